from iwtheory.cli import main

raise SystemExit(main())
