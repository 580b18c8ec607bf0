"""The README's measured parts, generated: the claims table and the `make reproduce` timings.

`make reproduce` writes ``paper/generated/claims.json`` and ``paper/generated/reproduce.json``;
``iwtheory readme --snapshot`` copies them into ``results/cpu/`` (committed: the last measured run) and
rewrites the README's marked blocks from that copy. A test renders the blocks from ``results/cpu/`` and
compares them with the README, so a hand edit or a stale table fails.
"""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from pathlib import Path

from iwtheory.report.macros import se_decimals

BLOCKS = ("results", "timings", "experiments", "bench")
SNAPSHOT = ("claims.json", "reproduce.json")


def _num(v, se=None) -> str:
    """Plain-text mean +- SE at the SE's precision (the paper's rule, ``macros.se_decimals``)."""
    if v is None:
        return "n/a"
    if se is not None and se > 0:
        k = se_decimals(se)
        return f"{v:.{k}f} ± {se:.{k}f}"
    return f"{v:.3g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"


def results_block(claims: list[dict]) -> str:
    """A markdown table: claim, verdict, value +- SE (seeds), premise and the claim's own scale (a letter, spelled
    out below); then what C8 and C12 rest on, the verdict counts and the multiplicity statement, all from
    ``claims``."""
    from iwtheory.compare.claims import multiplicity
    from iwtheory.report.claims import architectures, arm_entries, differing, scale_text
    from iwtheory.report.numbers import cnn_premise_text

    scales = [scale_text(e) for e in claims]
    keys = {t: chr(ord("a") + k) for k, t in enumerate(dict.fromkeys(t for t in scales if t != "---"))}
    arms = architectures(claims)

    def bold(v: str) -> str:
        return v if v in ("holds", "—") else f"**{v}**"

    lines = ["| claim | verdict | value (mean ± SE) | seeds | premise | scale |" + "".join(f" {a} |" for a in arms),
             "|---|---|---|---|---|---|" + "---|" * len(arms)]
    for e, sc in zip(claims, scales):
        premise = "met" if e["premise"]["met"] else "not met"
        seeds = str(e["n_seeds"]) if e["n_seeds"] > 1 else "—"
        other = "".join(f" {bold((e.get('by_architecture') or {}).get(a, {}).get('verdict', '—'))} |" for a in arms)
        lines.append(f"| {e['id']} {e['statement'].rstrip('.')} | {bold(e['verdict'])} | {_num(e['value'], e['se'])} "
                     f"| {seeds} | {premise} | {keys.get(sc, '—')} |{other}")
    if arms:
        lines += ["", "The verdict column is the MLP study's; the columns " + " and ".join(f"*{a}*" for a in arms)
                  + ": the same claim on the CNN arm (`make cnn`, records committed under `results/cpu/cnn/`), "
                  "each with its own scale in `results/cpu/claims.json`. Verdicts that differ between the "
                  "architectures: " + ("; ".join(differing(claims)) or "none") + "."]
        for a in arms:
            premise = cnn_premise_text(arm_entries(claims, a), tex=False)
            lines += ["", f"The premise on the {a} arm, measured: {premise}"]
    lines += ["", "Scales: " + "; ".join(f"({k}) {t}" for t, k in keys.items()) + "."]
    by = {e["id"]: e for e in claims}
    d8 = (by.get("C8") or {}).get("details") or {}
    if d8.get("correction_shift") is not None:
        way = "toward" if d8.get("correction_toward_balanced") else "away from"
        size = f" ({d8['correction_in_se']:.1f} SE, {way} the balanced nets)" \
            if isinstance(d8.get("correction_in_se"), (int, float)) else ""
        shift = _num(d8["correction_shift"], d8.get("correction_se"))
        lines += ["", f"C8's correction, measured: the weight 1/r moves late F by {shift}{size}; the verdict reads it "
                      "against the equivalence margin."]
    d12 = (by.get("C12") or {}).get("details") or {}
    if d12.get("rests_on"):
        lines += ["", f"C12 rests on both stopping rules: {d12['rests_on']}."]
    counts = {v: sum(e["verdict"] == v for e in claims) for v in ("holds", "fails", "inconclusive")}
    lines += ["", f"Holds: {counts['holds']}; fails: {counts['fails']}; inconclusive: {counts['inconclusive']} "
                  f"(of {len(claims)} claims, at these scales)."]
    if all("error_bound" in e for e in claims):
        m = multiplicity(claims)
        lines += ["", f"Multiplicity, from the tests each verdict rests on: of {m['decisive']} decisive verdicts, "
                      f"{m['bounded']} ({', '.join(m['bounded_claims']) or 'none'}) rest only on one-sided k-SE tests "
                      f"or deterministic computations, and the chance that any of them is false is at most "
                      f"{100 * m['bound']:.1f}% (Bonferroni); {', '.join(m['point_rule_claims']) or 'none'} also rest "
                      "on point rules, which bound no error rate."]
    return "\n".join(lines)


def timings_block(t: dict) -> str:
    """The measured wall time of `make reproduce` and its breakdown, with the machine it ran on."""
    lines = [f"Measured on {t['machine']} ({t['cpus']} CPUs, Python {t['python']}, torch {t['torch']}"
             f"{', GPU ' + t['gpu'] if t.get('gpu') else ', no GPU'}).", ""]
    if t.get("make_seconds") is not None:
        lines.append(f"`make reproduce`: **{t['make_seconds'] / 60:.1f} min** wall, of which the set-up (virtual "
                     f"environment, packages) took {t['setup_seconds'] / 60:.1f} min.")
    runs = t.get("runs") or {}
    if isinstance(runs.get("trained"), int) and isinstance(runs.get("found_finished"), int):
        how = "a fresh run: every run trained by this command" if runs["found_finished"] == 0 else \
            f"a resumed run: {runs['found_finished']} runs were found finished, so these times are partial"
        lines += ["", f"Runs trained: {runs['trained']} ({how})."]
    lines += ["", "| step | minutes |", "|---|---|"]
    for name, s in t["runs_seconds"].items():
        lines.append(f"| {name} | {s / 60:.2f} |")
    lines.append(f"| figures, tables, claims | {t['report_seconds'] / 60:.2f} |")
    if t.get("pdf_seconds") is not None:
        lines.append(f"| PDF | {t['pdf_seconds'] / 60:.2f} |")
    lines.append(f"| `iwtheory reproduce` in all | {t['total_seconds'] / 60:.2f} |")
    return "\n".join(lines)


def _block(fn, path: Path, data=None) -> str:
    """One block from one snapshot file (``data``: its content, when read already); a file that parses but lacks
    what the block reads is named, not a traceback."""
    data = _load_json(path) if data is None else data
    try:
        return fn(data)
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as e:
        raise ValueError(f"{path}: damaged ({type(e).__name__}: {e}); restore it from git or measure it again") \
            from None


def render(results_dir: Path, experiments: Path | None = None) -> dict[str, str]:
    """Each block's text from the snapshot in ``results_dir`` (and the configs under ``experiments``)."""
    r = Path(results_dir)
    experiments = experiments or r.resolve().parents[1] / "experiments"
    pop = r / "population_speed.json"
    pop_text = "\n\n" + _block(population_block, pop) if pop.is_file() else ""
    roof = r / "roofline.json"
    roof_text = _block(roofline_block, roof) + "\n\n" if roof.is_file() else ""
    arm = r / "cnn_throughput_cpu_arm.json"  # the CNN arm's width, M = 1 and 10, against the plain loop
    arm_text = "\n\n" + _block(cnn_block, arm) if arm.is_file() else ""
    scale = r / "scaling.json"
    scale_text = "\n\n" + _block(scaling_block, scale) if scale.is_file() else ""
    claims = _load_json(r / "claims.json")
    problems = claims_problems(claims)
    if problems:
        raise ValueError(f"{r / 'claims.json'}: not a claims snapshot ({'; '.join(problems[:3])})")
    try:
        runtimes = experiments_block(experiments, results_dir)
    except (KeyError, TypeError, IndexError, AttributeError) as e:
        raise ValueError(f"{r / 'timings.json'} or {r / 'reproduce.json'}: damaged ({type(e).__name__}: {e}); "
                         "restore them from git or measure them again") from None
    return {"results": _block(results_block, r / "claims.json", claims),
            "timings": _block(timings_block, r / "reproduce.json"),
            "experiments": runtimes,
            "bench": roof_text + _block(bench_block, r / "study_speed.json") + "\n\n"
            + _block(cnn_block, r / "cnn_throughput.json") + arm_text + pop_text + scale_text}


def roofline_block(b: dict) -> str:
    """The roofline benchmark: the machine's rates at the step's own shapes, the engine's, the lean loops'."""
    hw, big = b["hardware"], b["large_gflops"]
    rows = [f"`experiments/benchmarks/roofline.py` ({hw['processor']}, {hw['cpus']} CPUs, {hw['threads']} threads, "
            f"torch {hw['torch']}; least of {b['rounds']} rounds, all measured in one run of {b['seconds'] / 60:.1f} "
            f"min). A large batched matmul runs at {big['bmm_8x1024']:.0f} GFLOP/s here and a large convolution at "
            f"{big['conv_64x56x56']:.0f}. *Own shapes*: the matmuls or convolutions of one training step, each "
            "timed alone (its operands in cache: the best case) and, after the slash, all of one step's in the "
            "step's order (*in sequence*: each weight fetched from where the rest of the step left it); *roof*: "
            "those plus the SGD update timed alone; *fused*: the engine's step (an MLP's weight gradients go into "
            "the momentum buffers inside the matmul, each weight updated during the backward pass) against the "
            "same stack with autograd's own gradients and the update after the backward pass "
            "(`Stack.plain_update`), x faster; *loops*: the same steps written as a user "
            "would (x faster: engine time against theirs inverted); *end to end*: the lean loop, run as a program "
            "of its own with the same evaluations, against `iwtheory train`, each timed from outside at two "
            "lengths: the lean loop's time for the extra epochs over the command's (in brackets the range of "
            "the rounds' own ratios, the noise on it):", "",
            "| stack | models | own-shape GFLOP/s (alone / in sequence) | engine GFLOP/s | engine / own shapes "
            "(alone / in sequence) | roof ms/step | engine "
            "ms/step | engine / roof | fused vs plain update | engine vs loops (x faster) | end to end |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in b["shapes"].values():
        loops = ", ".join(f"{k} {v:.2f}" for k, v in r["engine_over_loops"].items())
        # a record from before the fused step, or a stack without fused layers (the CNN): nothing to compare
        fused = "-" if r.get("fused_over_plain") is None else f"{r['fused_over_plain']:.2f}"
        e2e = r.get("end_to_end")
        if e2e:
            spread = e2e.get("ratio_per_round") or []
            rng = f"; rounds {min(spread):.2f} to {max(spread):.2f}" if len(spread) > 1 else ""
            e2e = f"{e2e['ratio']:.2f} ({e2e['epochs'][0]} vs {e2e['epochs'][1]} epochs{rng})"
        else:
            e2e = "not run"
        seq = r.get("own_shape_sequence_gflops")  # absent from a record of before it was measured
        rows.append(f"| {r['layers']}, {r['train_images']} images | {r['models']} | {r['own_shape_gflops']:.0f}"
                    + (f" / {seq:.0f}" if seq else "") + f" | {r['engine_train_gflops']:.0f} | "
                    f"{r['engine_share_of_own_shape']:.2f}"
                    + (f" / {r['engine_share_of_sequence']:.2f}" if seq else "") + " | "
                    f"{r['roof_ms_per_step']:.2f} | {r['engine_ms_per_step']:.2f} | {r['engine_share_of_roof']:.2f} | "
                    f"{fused} | {loops} | {e2e} |")
    st = b["startup"]
    rows += ["", f"Start-up of `iwtheory train` (the study, interpreter start to its first training step, epoch 0's "
                 f"evaluation included): {st['first_step_s']:.2f} s, against {st['import_torch_s']:.2f} s for "
                 f"`import torch` alone in the same run (+{st['over_torch_s']:.2f} s)."]
    return "\n".join(rows)


def scaling_block(b: dict) -> str:
    """How the engines' times grow, with the log-log exponent between consecutive sizes."""
    hw, ex = b["hardware"], b["exponents"]

    def cells(rows, key, fmt):
        return ", ".join(f"{r['size']}: {fmt(r[key])}" for r in rows)

    def growth(e):
        return ", ".join(f"{v:.2f}" for v in e)
    rows = [f"`experiments/benchmarks/scaling.py` ({hw['machine']}, {hw['cpus']} CPUs, torch {hw['torch']}, numpy "
            f"{hw['numpy']}; least of {b['rounds']} rounds). Growth k: time ~ size^k between consecutive sizes "
            "(k = 1: doubling the size doubles the time; per model-step, k = 0 in M: more models in a stack cost "
            "nothing each).", "",
            "| engine | against | size: time | k |", "|---|---|---|---|"]
    labels = {"models": "models M in one stack", "width": "first hidden width (10 seeds x 3 weights)",
              "images": "training images"}
    for k, rows_ in b["network"].items():
        rows.append(f"| MLP ms per model-step | {labels.get(k, k)} | "
                    f"{cells(rows_, 'ms_per_model_step', lambda v: f'{v:.3f}')} | {growth(ex['network_' + k])} |")
    for k, rows_ in b["theory"].items():
        name, axis = k.split("_vs_")
        against = "points n (d = 10)" if axis == "n" else "dimension d (n = 1000)"
        rows.append(f"| `{name}` seconds | {against} | {cells(rows_, 'seconds', lambda v: f'{v:.3g}')} | "
                    f"{growth(ex[k])} |")
    rows += ["", "![How the engines' times grow (drawn by scaling.py from the same JSON)](results/cpu/scaling.png)"]
    return "\n".join(rows)


def population_block(b: dict) -> str:
    """Any module's population (torch.func) against the hand-written stacks and a direct torch.func loop."""
    hw = b["hardware"]
    rows = [f"`experiments/benchmarks/population_speed.py` ({hw['machine']}, {hw['cpu_threads']} threads, torch "
            f"{hw['torch']}, {hw['device']}; training steps of M models, batch 16, model-steps per second; best of "
            f"{b['results'][0]['rounds']} interleaved rounds): a user's module on the generic path against the "
            "package's hand-written stack of the same architecture, and against `vmap(grad(loss))` written "
            "directly:", "",
            "| model | M | fast path | generic | direct vmap | generic / fast | generic / vmap |",
            "|---|---|---|---|---|---|---|"]
    for r in b["results"]:
        s = r["model_steps_per_s"]
        name = "MLP 784-128-64-1" if r["model"] == "mlp" else "B&L CNN"
        rows.append(f"| {name} | {r['M']} | {s['fast']:.1f} | {s['generic']:.1f} | {s['vmap']:.1f} | "
                    f"{r['generic_over_fast']:.2f} | {r['generic_over_vmap']:.2f} |")
    return "\n".join(rows)


def cnn_block(b: dict) -> str:
    """The B&L CNN engine against a plain DataLoader loop, evaluation charged to both; at the width measured, with
    the achieved rate's share of the machine's convolution rate where the run measured one."""
    base = b["plain_loop"]
    width = f" at width {b['width']:g}" if b.get("width", 1.0) != 1.0 else ""
    conv = b.get("conv_rate_tflops")
    rows = [f"`experiments/benchmarks/cnn_throughput.py` ({b['device']}, torch {b['torch']}, {b['cpu_threads']} "
            f"threads; B&L CNN{width}, {b['train_images']} training images, batch 16, {b['steps']} timed steps, "
            "evaluation charged to both paths at the paper schedule's rate"
            + (f"; a large convolution runs at {1e3 * conv:.0f} GFLOP/s here, in the same run" if conv else "") + "):",
            "", "| path | ms per step | model-epochs/s | vs plain loop |" + (" GFLOP/s (share of the conv rate) |"
                                                                          if conv else ""),
            "|---|---|---|---|" + ("---|" if conv else ""),
            f"| plain loop + DataLoader, M = 1 | {base['ms_per_step']:.1f} | {base['model_epochs_per_s']:.3f} | 1 |"
            + (" |" if conv else "")]
    for r in b["engine"]:
        layout = ", channels-last" if b.get("channels_last") else ""
        rate = f" {1e3 * r['tflops']:.0f} ({r['share_of_conv_rate']:.2f}) |" if conv else ""
        rows.append(f"| engine, M = {r['models']}, {r['precision']}{layout} | {r['ms_per_step']:.1f} | "
                    f"{r['model_epochs_per_s']:.3f} | {r['ratio_vs_plain']:.2f} |{rate}")
    if b.get("params_by_width"):
        counts = "; ".join(f"{w}: " + ", ".join(f"{n:,} on {task}" for task, n in by.items())
                           for w, by in b["params_by_width"].items())
        rows += ["", f"Parameters of the B&L CNN by width factor (counted by the benchmark): {counts}."]
    return "\n".join(rows)


def bench_block(b: dict) -> str:
    """The study benchmark: `iwtheory train` end to end against a bare loop doing the same work."""
    ms = b["ms_per_model_step"]
    return (f"`experiments/benchmarks/study_speed.py` ({b['machine']}, {b['cpus']} CPUs, torch {b['torch']}, "
            f"{b['threads']} threads): `{b['config']}` [{b['regime']}], {b['models']} MLPs "
            f"{'-'.join(map(str, b['widths']))}, {b['epochs'][0]}- and {b['epochs'][1]}-epoch runs, least of "
            f"{b['rounds']} interleaved rounds: the study runs at **{b['ratio']:.2f}** of the bare loop's throughput "
            f"({ms['engine']:.3f} against {ms['bare']:.3f} ms per model-step). The bare loop, like a loop a user "
            "writes, leaves subnormal floats unflushed, which slows its later epochs; the roofline's lean loops are "
            "timed on early epochs, where none occur yet, so their end-to-end ratio above is the stricter one.")


def _block_re(name: str) -> re.Pattern:
    return re.compile(rf"<!-- {name}:begin -->\n(.*?)\n?<!-- {name}:end -->", re.S)


def blocks_of(text: str) -> dict[str, str]:
    """The README's current blocks, by name (between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` lines)."""
    out = {}
    for name in BLOCKS:
        m = _block_re(name).search(text)
        if m:
            out[name] = m.group(1)
    return out


def update(readme: Path, results_dir: Path, experiments: Path | None = None) -> bool:
    """Rewrite the README's blocks from the snapshot; True when the README changed."""
    text = readme.read_text()
    new = text
    for name, body in render(results_dir, experiments).items():
        pattern = _block_re(name)
        if not pattern.search(new):
            raise ValueError(f"{readme} has no block {name!r} (lines <!-- {name}:begin --> and <!-- {name}:end -->)")
        new = pattern.sub(lambda _m: f"<!-- {name}:begin -->\n{body}\n<!-- {name}:end -->", new, count=1)
    if new != text:
        readme.write_text(new)
    return new != text


VERDICTS = ("holds", "fails", "inconclusive", "not applicable")
_CLAIM_FIELDS = {"id": str, "statement": str, "statistic": str, "rule": str, "verdict": str, "n_seeds": int,
                 "premise": dict}


def claims_problems(claims) -> list[str]:
    """Why ``claims`` (a claims.json's content) is no snapshot of a finished `make reproduce`; [] when it is one:
    every claim of the registry once, in its order, each with its fields of their types, none of a quick run."""
    from iwtheory.compare.claims import ORDER

    if not isinstance(claims, list):
        return [f"expected a list of claims, found {type(claims).__name__}"]
    ids = [c.get("id") if isinstance(c, dict) else None for c in claims]
    if ids != list(ORDER):
        return [f"expected the claims {', '.join(ORDER)} in that order, found {ids[:20]}"]
    out = []
    for c in claims:
        for key, kind in _CLAIM_FIELDS.items():
            if not isinstance(c.get(key), kind) or isinstance(c.get(key), bool) and kind is int:
                out.append(f"{c['id']}: {key} is not a {kind.__name__}")
        for key in ("value", "se"):
            v = c.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                out.append(f"{c['id']}: {key} is not a number or null")
        if c.get("verdict") not in VERDICTS:
            out.append(f"{c['id']}: verdict {c.get('verdict')!r} is none of {VERDICTS}")
        if c.get("quick"):
            out.append(f"{c['id']}: from a quick variant (a smoke run, not the study)")
    return out


def timings_problems(t) -> list[str]:
    """Why ``t`` (a reproduce.json's content) is no timing of a finished, full `make reproduce`; [] when it is."""
    if not isinstance(t, dict):
        return [f"expected a JSON object, found {type(t).__name__}"]
    out = []
    if t.get("quick") is not False:
        out.append("it times `reproduce --quick` (or does not say), not the full study")
    runs = t.get("runs_seconds")
    if not isinstance(runs, dict) or not runs or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                         and v >= 0 for v in runs.values()):
        out.append("runs_seconds is not a table of non-negative seconds per experiment")
    for key in ("total_seconds", "report_seconds", "pdf_seconds"):
        v = t.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0):
            out.append(f"{key} is not a non-negative number")
    if not isinstance(t.get("total_seconds"), (int, float)):
        out.append("total_seconds is missing")
    if isinstance(t.get("cpus"), bool) or not isinstance(t.get("cpus"), int):
        out.append("cpus is not an integer")
    return out


def _load_json(path: Path):
    from iwtheory.runs.files import read_regular

    try:
        return json.loads(read_regular(path, "snapshot", ValueError).decode())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"{path}: not readable JSON ({e})") from None


def snapshot(generated: Path, results_dir: Path) -> list[Path]:
    """Copy a finished, full `make reproduce`'s claims and timings into the committed snapshot: refused, naming
    why, when either is damaged, from a quick run, misses a claim of the registry, or would replace a snapshot
    that measured claims this one does not."""
    srcs = {name: Path(generated) / name for name in SNAPSHOT}
    for name, src in srcs.items():
        if not src.is_file():
            raise FileNotFoundError(f"{src} is missing: run `make reproduce` first")
    claims, timings = _load_json(srcs["claims.json"]), _load_json(srcs["reproduce.json"])
    problems = [f"claims.json: {p}" for p in claims_problems(claims)] + \
        [f"reproduce.json: {p}" for p in timings_problems(timings)]
    old = Path(results_dir) / "claims.json"
    if not problems and old.is_file():
        try:
            before = {c["id"] for c in _load_json(old) if c.get("statistic")}
        except (ValueError, TypeError, KeyError):
            before = set()
        lost = sorted(before - {c["id"] for c in claims if c.get("statistic")})
        if lost:
            problems.append(f"the committed snapshot measured {', '.join(lost)}, which this one does not")
    if problems:
        raise ValueError(f"not a snapshot of a finished `make reproduce`, so results/cpu/ is left as it was: "
                         f"{'; '.join(problems[:5])}")
    results_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for name, src in srcs.items():
        shutil.copyfile(src, results_dir / name)
        out.append(results_dir / name)
    return out


# ---- runtimes: every config's quick variant (make timings) and its full run (make reproduce) -----------------

RUNTIME_PREFIX = "# runtime:  "


def _one_line(text) -> str:
    """A recorded string on one line (it goes into a table cell or a config comment)."""
    return " ".join(str(text).split())


def _dur(s: float) -> str:
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.1f} min"


def cnn_run(results_dir: Path) -> dict:
    """The CNN arm's run record (results/cpu/cnn/run.json, written by `make cnn`), or {} where there is none."""
    p = Path(results_dir) / "cnn" / "run.json"
    try:
        data = _load_json(p) if p.is_file() else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) and not data.get("quick") else {}


def runtime_text(name: str, timings: dict, reproduce: dict, cnn: dict | None = None) -> str:
    """What a config's header says of its runtime, from the measurements alone (``cnn``: `make cnn`'s record)."""
    q = timings["quick"].get(name)
    full = reproduce["runs_seconds"].get(name)
    where = f"{timings['cpus']} CPUs"
    arm = ((cnn or {}).get("arms") or {}).get(name) or {}
    if full is None and isinstance(arm.get("seconds"), (int, float)) and not arm.get("found_finished"):
        share = arm.get("cpu_share")
        by = _one_line(arm.get("command") or "make cnn")  # another command's record, kept by make cnn
        extra = [f"using {share:.0%} of them: an upper bound"] if isinstance(share, (int, float)) and share < 0.9 \
            else []
        extra += [_one_line(arm["note"])] if arm.get("note") else []
        parts = [f"full {_dur(arm['seconds'])} ({by}, {cnn.get('cpus')} CPUs{''.join(', ' + e for e in extra)})"]
    else:
        parts = [f"full {_dur(full)} (make reproduce, {reproduce['cpus']} CPUs)" if full is not None
                 else "full: not part of make reproduce"]
    if isinstance(q, (int, float)):
        parts.append(f"quick {_dur(q)} ({where})")
    elif q:
        parts.append(f"quick: {q}")
    return "; ".join(parts) + "  [measured: make timings]"


def config_paths(experiments: Path) -> dict[str, Path]:
    """Every experiment config by its file stem (the gpu/ folder's too)."""
    return {p.stem: p for p in sorted(Path(experiments).glob("*.toml")) + sorted(Path(experiments).glob("gpu/*.toml"))}


def config_runtime_lines(experiments: Path, results_dir: Path) -> dict[Path, str]:
    """The runtime line each config's header should hold."""
    timings = _load_json(Path(results_dir) / "timings.json")
    reproduce = _load_json(Path(results_dir) / "reproduce.json")
    cnn = cnn_run(results_dir)
    return {p: RUNTIME_PREFIX + runtime_text(name, timings, reproduce, cnn)
            for name, p in config_paths(experiments).items()}


PILOT_PREFIX = "# pilot:    "


def pilot_lines(name: str, results_dir: Path) -> list[str]:
    """The ``# pilot:`` lines of config ``name``'s header: one per pilot of it under ``results_dir/pilots`` (the
    JSON ``experiments/pilots/separation.py --json`` writes, naming its config), from the measurements alone."""
    out = []
    for f in sorted((Path(results_dir) / "pilots").glob("*.json")):
        try:
            p = _load_json(f)
        except ValueError:
            continue
        if not isinstance(p, dict) or p.get("config") != name or not isinstance(p.get("regimes"), dict):
            continue
        parts = []
        for r, v in p["regimes"].items():
            latest = max(v.get("separation_epochs") or [float("nan")])
            parts.append(f"{r} {v.get('separated')}/{v.get('nets')} separate by epoch {latest:.0f} of "
                         f"{v.get('epochs')}, premise {'met' if v.get('premise_met') else 'not met'}")
        out.append(f"{PILOT_PREFIX}{f.stem}: " + "; ".join(parts) + f" ({_dur(float(p.get('seconds', 0)))})")
    return out


def update_configs(experiments: Path, results_dir: Path) -> list[Path]:
    """Rewrite the ``# runtime:`` line of every config header, and its ``# pilot:`` lines (after the runtime line)
    where pilots of it were measured; return the files changed."""
    changed = []
    for p, line in config_runtime_lines(experiments, results_dir).items():
        text = p.read_text()
        lines = [ln for ln in text.split("\n") if not ln.startswith("# pilot:")]
        hits = [i for i, ln in enumerate(lines) if ln.startswith("# runtime:")]
        if len(hits) != 1:
            raise ValueError(f"{p}: its header needs exactly one '# runtime:' line, found {len(hits)}")
        lines[hits[0]:hits[0] + 1] = [line, *pilot_lines(p.stem, results_dir)]
        if "\n".join(lines) != text:
            p.write_text("\n".join(lines))
            changed.append(p)
    return changed


def experiments_block(experiments: Path, results_dir: Path) -> str:
    """A markdown table: each config, its description and its measured runtimes."""
    timings = _load_json(Path(results_dir) / "timings.json")
    reproduce = _load_json(Path(results_dir) / "reproduce.json")
    cnn = cnn_run(results_dir)
    rows = ["| config | what it runs | runtime |", "|---|---|---|"]
    for name, p in config_paths(experiments).items():
        desc = tomllib.loads(p.read_text()).get("description", "")
        rel = p.relative_to(experiments).as_posix()
        rows.append(f"| `{rel}` | {desc} | {runtime_text(name, timings, reproduce, cnn).split('  [')[0]} |")
    if cnn.get("records_files"):
        rows += ["", f"The CNN arm's records: {cnn['records_files']} files, {cnn['records_bytes'] / 2**20:.1f} MiB, "
                     f"committed under `results/cpu/cnn/runs/` ({cnn['machine']}, {cnn['cpus']} CPUs, torch "
                     f"{cnn['torch']}; written by `{_one_line(cnn['command']).replace('`', '')}`, "
                     "which keeps the record of an arm an earlier command trained; `results/cpu/cnn/run.json` "
                     "names each arm's command and time)."]
    return "\n".join(rows)
