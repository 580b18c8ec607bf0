"""LaTeX figures (pgf + pdf), tables and number macros from run records."""
