"""`doppel detect VIDEO... -o REPORT_DIR` and `doppel detect train`.

`detect train` is recognised by its first positional word (a file literally
named `train` can still be scanned as `./train`). Inputs may be video or
image files, folders (their media files, sorted) or list files (.txt/.csv/.lst:
one path per line, first CSV column; a `path` header is skipped). Files are
analysed in `--jobs` processes; a file that fails is reported and skipped, and
the exit status is non-zero only when nothing could be analysed.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import csv
import dataclasses
import json
import logging
import multiprocessing
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .. import filetypes
from ..errors import DoppelError
from ..faces import options
from . import config

if TYPE_CHECKING:  # the CLI imports only argparse-level modules; the heavy ones load in run()
    from tqdm import tqdm

    from . import detectors

log = logging.getLogger(__name__)

LIST_EXTS = {".txt", ".csv", ".lst"}
DEFAULT_DATA = "../shared/data"
CNN_SHAPES = {"resnet": config.RESNET, "plain": config.CNNConfig(), "mouth": config.MOUTH, "dlib": config.DLIB}
TRAIN_FLAGS: dict = {}  # dest -> default of the 'detect train' flags (set by add_arguments), for the card's command


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="VIDEO",
                   help="videos, images, folders or list files; or 'train' to retrain the detectors")
    p.add_argument("-o", "--output", metavar="DIR", help="folder for the reports (for 'train': for the new weights)")
    p.add_argument("--annotate", action="store_true", help="also write each video with boxes and scores drawn")
    p.add_argument("--jobs", type=int, default=1, help="files analysed in parallel processes")
    p.add_argument("--step", type=int, default=config.ScanConfig.step, help="analyse every N-th frame")
    p.add_argument("--weights", default=str(config.WEIGHTS_DIR), help="detector weights folder")
    p.add_argument("--reference", nargs="+", metavar="PHOTO_OR_VIDEO",
                   help="photos or videos of the person the video claims to show: the report gives each face's "
                        "dlib distance to them over time (same person below 0.6); the verdict's p is unchanged")
    options.add_detect_arguments(p)
    t = p.add_argument_group("detect train")
    t.add_argument("--data", default=DEFAULT_DATA, help="sample media folder to train from")
    d = {f.name: f.default for f in dataclasses.fields(config.TrainConfig)}
    t.add_argument("--corpus", type=int, default=d["corpus"], metavar="N",
                   help="add N corpus identities (data/corpus, training part) to the CNN's training faces")
    t.add_argument("--corpus-fusion", type=int, default=d["corpus_fusion"], metavar="N",
                   help="add N corpus identities (fusion part) to the fusion's faces")
    t.add_argument("--val", type=int, default=d["val"], metavar="N",
                   help="corpus identities (fusion part) whose faces and blends validate the CNN at each checkpoint")
    t.add_argument("--clip-faces", type=int, default=d["video_limit"], metavar="N",
                   help="faces per training clip (every 2nd frame)")
    t.add_argument("--heldout-faces", type=int, default=d["heldout_limit"], metavar="N",
                   help="faces per fusion or calibration clip (every 3rd frame)")
    t.add_argument("--cnn", choices=sorted(CNN_SHAPES), default="resnet",
                   help="CNN shape: resnet (1.2M parameters, 128 px), plain (47k, 64 px: quick runs), mouth (the "
                        "resnet on a 64 px crop of the mouth at the same pixel scale; pair it with --part-share) or dlib "
                        "(dlib's face-recognition ResNet, 4.4M, 128 px, started from dlib's weights)")
    t.add_argument("--init", metavar="DIR", nargs="+",
                   help="weights folder whose CNN (same shape) training starts from; several: their CNNs averaged "
                        "(a weight soup of fine-tunes of one CNN; with --max-steps 0 the soup itself is refitted)")
    t.add_argument("--flip-tta", action=argparse.BooleanOptionalAction, default=None,
                   help="score each face as the mean of the CNN's logits of its crop and its mirror image (twice "
                        "the CNN's cost a face; training is unchanged); default: the (first) --init's setting, else off")
    t.add_argument("--crop-coverage", type=float, metavar="C",
                   help="share of the CNN's crop the face's landmark box spans, in training and in every scan "
                        f"(default: the shape's, {config.RESNET.coverage:g} for resnet); with --init: the init's unless given")
    t.add_argument("--coverage-jitter", type=float, default=d["coverage_jitter"], metavar="J",
                   help="training crops take a coverage within +- J of --crop-coverage (scale augmentation)")
    t.add_argument("--reenact-share", type=float, default=d["reenact_share"], metavar="P",
                   help="share of the CNN's blends that are reenactment blends: the person's own mouth or lower "
                        "face from another frame of the clip (or another photo), aligned and blended in")
    t.add_argument("--gen-share", type=float, default=d["gen_share"], metavar="P",
                   help="share of the CNN's other blends that are generated blends: the face redrawn by one of eight "
                        "small autoencoders with different upsampling (trained ~25 s each at the start of the run) "
                        "and pasted back, so the CNN learns generators' traces, not one generator's look")
    t.add_argument("--mouth", metavar="DIR",
                   help="weights folder of a mouth CNN (from 'detect train --cnn mouth'): added, as it is, as a second "
                        "CNN whose logit the fusion may weigh")
    t.add_argument("--partner", metavar="DIR",
                   help="weights folder of a face CNN of any shape (e.g. from 'detect train --cnn dlib'): added, as "
                        "it is, as a second face CNN; a face's CNN score is the mean of the two CNNs' logits, each on "
                        "its own crop (with --init DIR2 --max-steps 0: only the fusion and calibration are refitted); "
                        "without it, a single --init folder's partner is kept")
    t.add_argument("--part-share", type=float, default=d["part_share"], metavar="P",
                   help="share of the blends made through a part mask (lower face, mouth) instead of a face shape")
    t.add_argument("--seg-weight", type=float, default=d["seg_weight"], metavar="W",
                   help="weight of an auxiliary training loss: the CNN's last feature map also learns where a blend "
                        "changed the face (a training-only head; 0: off)")
    t.add_argument("--pretrained-lr-share", type=float, default=d["pretrained_lr_share"], metavar="S",
                   help="share of --lr that a pretrained backbone (--cnn dlib) learns at; its head gets all of it")
    t.add_argument("--resume", action="store_true",
                   help="continue the CNN from the checkpoint an interrupted run left in the -o folder")
    t.add_argument("--lr", type=float, default=d["lr"], help="CNN peak learning rate (cosine decay)")
    t.add_argument("--threads", type=int, default=d["threads"], help="torch threads for the CNN's training steps")
    t.add_argument("--cache", metavar="DIR", help="keep the faces found here (e.g. /tmp/detect_cache): reruns skip finding them")
    t.add_argument("--minutes", type=float, default=d["minutes"], help="training time budget (wall-clock minutes)")
    t.add_argument("--seed", type=int, default=d["seed"], help="random seed")
    t.add_argument("--max-steps", type=int, default=d["max_steps"],
                   help="CNN step cap; set it low enough to bind for a run that does not depend on machine speed")
    t.add_argument("--fakes", metavar="DIR",
                   help="folder of doppel-made fake videos <kind>_<clip>.mp4 (scripts/make_detect_fakes.py), "
                        "added to training, fusion and calibration by clip")
    t.add_argument("--fakes-train", default=",".join(d["fakes_train"]), metavar="KINDS",
                   help="comma-separated kinds of --fakes used for the CNN and the fusion; the others "
                        "only calibrate (a kind the models never saw)")
    t.add_argument("--mark-share", type=float, default=d["mark_share"], metavar="P",
                   help="share of blends given doppel's watermark (real faces get it as often as fakes in all, "
                        "fake videos always have it): the mark then tells the CNN nothing about the class")
    TRAIN_FLAGS.update({a.dest: a.default for a in t._group_actions})


def run(args: argparse.Namespace) -> int:
    import torch

    from . import identity
    torch.set_num_threads(1)  # parallelism comes from --jobs; 2 threads on 2 busy cores were 3x slower
    if args.inputs[0] == "train" and not Path("train").exists():
        return _train(args)
    if not args.output:
        raise DoppelError("give a report folder with -o REPORT_DIR")
    if args.jobs < 1 or args.step < 1:
        raise DoppelError(f"--jobs and --step must be at least 1 (got {args.jobs}, {args.step})")
    options.detect_config(args)  # bad face-finder flags fail before the models load
    files = expand(args.inputs)
    if not files:
        raise DoppelError("no video or image files found in: " + " ".join(args.inputs))
    _detectors(args.weights)  # fail early, once, on missing weights
    ref = identity.reference_embedding(args.reference, options.detect_config(args)) if args.reference else None
    return _analyse_all(files, args, ref)


def cnn_shape(args: argparse.Namespace) -> config.CNNConfig:
    """The CNN shape and crop of a `detect train` run: --cnn's, at --crop-coverage, else (with --init) at the
    init's coverage, else the shape's; DoppelError for a crop that cannot be cut or a jitter beyond it."""
    shape = CNN_SHAPES[args.cnn]
    if args.init:  # a continued CNN keeps the scale it learnt and how it is scored unless told
        from .detectors import Detectors, soup
        if len(args.init) > 1:
            soup(args.init)  # every folder loads and has the first's shape: fail now, not after finding faces
        first = Detectors.load(args.init[0]).cnn.cfg
        shape = dataclasses.replace(shape, coverage=first.coverage if args.crop_coverage is None else shape.coverage,
                                    flip=first.flip)
    if args.flip_tta is not None:
        shape = dataclasses.replace(shape, flip=args.flip_tta)
    from .train import LOOSEST_COVERAGE as loosest
    if args.crop_coverage is not None:
        tightest = 0.9 if shape.region == "face" else 2.0  # a mouth crop holds less than the face
        if not loosest <= args.crop_coverage <= tightest:
            raise DoppelError(f"--crop-coverage must be from {loosest:g} to {tightest:g} (got {args.crop_coverage}): "
                              "training cuts its crops from a window that holds no looser one")
        shape = dataclasses.replace(shape, coverage=args.crop_coverage)
    if not 0.0 <= args.coverage_jitter <= round(shape.coverage - loosest, 6):
        raise DoppelError(f"--coverage-jitter must be from 0 to {shape.coverage - loosest:.2f} at coverage "
                          f"{shape.coverage:g} (got {args.coverage_jitter})")
    return shape


def _train(args: argparse.Namespace) -> int:
    from . import train
    if len(args.inputs) > 1:
        raise DoppelError(f"'detect train' takes no files (got {' '.join(args.inputs[1:])})")
    kinds = tuple(k for k in args.fakes_train.split(",") if k)
    unknown = set(kinds) - set(train.FAKE_KINDS) - {"other"}
    if unknown:
        raise DoppelError(f"--fakes-train: unknown kind {', '.join(sorted(unknown))} "
                          f"(known: {', '.join(train.FAKE_KINDS)})")
    for flag in ("mark_share", "reenact_share", "gen_share", "part_share", "pretrained_lr_share"):
        if not 0.0 <= getattr(args, flag) <= 1.0:
            raise DoppelError(f"--{flag.replace('_', '-')} must be from 0 to 1 (got {getattr(args, flag)})")
    if args.seg_weight < 0:
        raise DoppelError(f"--seg-weight must be 0 or more (got {args.seg_weight})")
    shape = cnn_shape(args)
    if not args.output:  # never the shipped weights by default: a retrain is copied there only if it is better
        raise DoppelError("give the folder for the new weights with -o DIR")
    cfg = train.TrainConfig(minutes=args.minutes, seed=args.seed, max_steps=args.max_steps, fakes=args.fakes,
                            fakes_train=kinds, corpus=args.corpus, corpus_fusion=args.corpus_fusion,
                            init=(args.init[0] if len(args.init) == 1 else tuple(args.init)) if args.init else None,
                            lr=args.lr, cache=args.cache, video_limit=args.clip_faces, heldout_limit=args.heldout_faces,
                            cnn=shape, val=args.val, threads=args.threads, resume=args.resume,
                            mark_share=args.mark_share, coverage_jitter=args.coverage_jitter,
                            reenact_share=args.reenact_share, gen_share=args.gen_share, part_share=args.part_share, mouth=args.mouth, partner=args.partner,
                            seg_weight=args.seg_weight, pretrained_lr_share=args.pretrained_lr_share)
    train.mouth_cnn(cfg)  # a bad --mouth or --partner folder fails now, not after the CNN's training
    train.partner_cnn(cfg)
    # the command as given, less what only changes where files go or how fast (cache, resume, threads)
    skip = {"cache", "resume", "threads", "fakes_train"}
    changed = [(k, v) for k, v in vars(args).items() if k in TRAIN_FLAGS and k not in skip
               and v != TRAIN_FLAGS[k] and v is not None]
    cmd = "doppel detect train --data " + str(args.data) + "".join(_flag(k, v) for k, v in changed)
    cmd += f" --fakes-train {args.fakes_train}" if args.fakes else ""
    cmd += f" -o {args.output}"
    det = train.train(args.data, args.output, cfg, command=cmd)
    print(f"wrote {args.output} (version {det.version}); validation: "
          f"{json.dumps(det.meta['validation']['frame_auc'])}")
    return 0


def _flag(dest: str, value) -> str:
    """One flag of the card's command as it would be typed."""
    name = "--" + dest.replace("_", "-")
    if isinstance(value, bool):
        return f" {name}" if value else f" --no-{name[2:]}"
    if isinstance(value, (list, tuple)):
        return f" {name} " + " ".join(str(v) for v in value)
    return f" {name} {value:g}" if isinstance(value, float) else f" {name} {value}"


def expand(inputs: list[str]) -> list[Path]:
    """Media files named by the inputs, in order, without duplicates; missing paths are kept (to fail)."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and _is_media(f))
        elif p.suffix.lower() in LIST_EXTS and p.is_file():
            out += _read_list(p)
        else:
            out.append(p)
    return list(dict.fromkeys(out))


def _is_media(p: Path) -> bool:
    return filetypes.is_video_path(p) or filetypes.is_image_path(p)


def _read_list(p: Path) -> list[Path]:
    rows = [r for r in csv.reader(p.read_text().splitlines()) if r and r[0].strip() and not r[0].startswith("#")]
    if rows and rows[0][0].strip().lower() == "path":
        rows = rows[1:]
    return [(p.parent / r[0].strip()) if not Path(r[0].strip()).is_absolute() else Path(r[0].strip()) for r in rows]


def report_names(files: list[Path]) -> list[str]:
    """A distinct report stem per file (the file stem, numbered when stems repeat)."""
    seen: dict[str, int] = {}
    out = []
    for f in files:
        n = seen.get(f.stem, 0)
        seen[f.stem] = n + 1
        out.append(f.stem if n == 0 else f"{f.stem}-{n + 1}")
    return out


_DET: dict = {}  # per process: {weights folder: its loaded detectors}, the latest only


def _detectors(weights: str) -> detectors.Detectors:
    """The detectors of `weights`, loaded once per process (other or rewritten weights are loaded anew)."""
    from . import detectors
    files = sorted(Path(weights).glob("*")) if Path(weights).is_dir() else []
    key = (str(weights), tuple((f.name, f.stat().st_mtime_ns) for f in files))
    if key not in _DET:
        _DET.clear()
        _DET[key] = detectors.Detectors.load(weights)
    return _DET[key]


def _worker_init(weights: str) -> None:
    import torch
    torch.set_num_threads(1)
    _detectors(weights)


def analyse(path: Path, out_dir: Path, name: str, annotate: bool, step: int, weights: str,
            finder: options.DetectConfig = options.DetectConfig(), reference: dict | None = None,
            progress: bool = False) -> dict:
    """Scan one file and write its reports; returns its summary line (or the error)."""
    from . import report, scan
    try:
        det = _detectors(weights)
        result = scan.scan(path, det, scan.ScanConfig(step=step, detect=finder), progress=progress,
                           reference=reference)
        report.write_json(result, out_dir / f"{name}.json")
        report.write_html(result, out_dir / f"{name}.html")
        if annotate and not filetypes.is_image_path(path):
            report.annotate(path, result, out_dir / f"{name}.annotated.mp4", det.platt)
        v = result.verdict
        line = {"file": str(path), "report": f"{name}.html", "label": v.label,
                "probability": v.probability, "reasons": list(v.reasons),
                "frames": len(result.frames), "frames_without_face": result.frames_without_face}
        if result.identity is not None:
            line["identity_median"] = result.identity["median"]
        return line
    except DoppelError as e:
        return {"file": str(path), "error": str(e)}
    except Exception as e:  # noqa: BLE001 - a batch reports a broken file and moves on
        log.debug("failed on %s", path, exc_info=True)
        return {"file": str(path), "error": f"{e.__class__.__name__}: {e}"}


def _analyse_all(files: list[Path], args: argparse.Namespace, ref: dict | None) -> int:
    from tqdm import tqdm

    from .. import media
    from . import report
    out_dir = Path(args.output)
    made = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    names = report_names(files)
    finder = options.detect_config(args)
    jobs = [(f, out_dir, n, args.annotate, args.step, args.weights, finder, ref) for f, n in zip(files, names)]
    bar = tqdm(total=len(jobs), desc="files", unit="file", disable=len(jobs) < 2)
    if args.jobs == 1 or len(files) == 1:
        _worker_init(args.weights)
        results = [_show(analyse(*j, progress=True), bar) for j in jobs]
    else:
        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(args.jobs, ctx, _worker_init, (args.weights,)) as pool:
            results = [_show(r, bar) for r in pool.map(analyse, *zip(*jobs))]
    bar.close()
    if not any("error" not in r for r in results):  # nothing to report: leave nothing behind
        if made and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise DoppelError(f"nothing could be analysed ({len(results)} file(s) failed; see above)")
    with media.atomic_path(out_dir / "summary.json") as tmp:
        tmp.write_text(json.dumps(results, indent=1))
    report.write_index(results, out_dir / "index.html")
    return 0


def _show(r: dict, bar: tqdm) -> dict:
    from tqdm import tqdm
    if "error" in r:
        tqdm.write(f"{r['file']}: skipped: {r['error']}", file=sys.stderr)
    else:
        p = "" if r["probability"] is None else f" p={r['probability']:.2f}"
        miss = f"; no face in {r['frames_without_face']} of {r['frames']} frames" if r.get("frames_without_face") else ""
        tqdm.write(f"{r['file']}: {r['label']}{p} ({'; '.join(r['reasons'][:2]) or '-'}{miss}) -> {r['report']}")
    bar.update(1)
    return r
