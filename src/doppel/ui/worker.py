"""`python -m doppel.ui.worker JOB_FOLDER`: run one job's stage, write result.json, exit.

Each job kind is a function (params, out folder) -> JSON-able result that
calls a stage's public Python function, the same one its CLI calls. A
DoppelError becomes the job's one-line error; Ctrl-C (the Stop button's
SIGINT) a stopped job; anything else a failed job with the exception named
(the traceback goes to the log).
"""
from __future__ import annotations

import argparse
import base64
import json
import logging
import sys
import traceback
from pathlib import Path

from .. import interrupt
from ..errors import DoppelError
from .jobs import DONE, FAILED, STOP_GRACE_S, STOPPED, read_json, write_json

log = logging.getLogger("doppel.ui.worker")

SHEET_KEPT, SHEET_PER_REASON = 64, 16  # faces on an extract job's contact sheet


def run_detect(p: dict, out: Path) -> dict:
    """Scan each file; per file: the JSON and HTML reports, the score plot, the face heatmaps."""
    import torch
    from ..detect import cli as dcli
    from ..detect import identity, detectors, scan
    torch.set_num_threads(1)
    det = detectors.Detectors.load(p.get("weights") or str(detectors.WEIGHTS_DIR))
    ref = identity.reference_embedding(p["reference"]) if p.get("reference") else None  # DoppelError: no face
    files = [Path(f) for f in p["files"]]
    done = []
    for f, name in zip(files, dcli.report_names(files)):
        log.info("file %d of %d: %s", len(done) + 1, len(files), f.name)
        try:
            done.append(_detect_one(f, name, det, scan.ScanConfig(step=int(p.get("step", 3))), out, ref))
        except DoppelError as e:
            done.append({"file": f.name, "error": str(e)})
        except Exception as e:  # noqa: BLE001 - one broken file must not hide the others' verdicts
            log.warning("failed on %s", f, exc_info=True)
            done.append({"file": f.name, "error": f"{e.__class__.__name__}: {e}"})
        write_json(out / "files.json", {"files": done, "total": len(files)})  # the page shows each as it lands
    if all("error" in d for d in done):
        raise DoppelError("nothing could be analysed: " + "; ".join(f"{d['file']}: {d['error']}" for d in done))
    return {"files": done}


def _detect_one(f: Path, name: str, det, cfg, out: Path, ref: dict | None = None) -> dict:
    from .. import media
    from ..detect import report, scan
    result = scan.scan(f, det, cfg, progress=True, reference=ref)
    report.write_json(result, out / f"{name}.json")
    report.write_html(result, out / f"{name}.html")
    v = result.verdict
    plot = None
    if any(fr.faces for fr in result.frames):
        plot = f"{name}.scores.png"
        (out / plot).write_bytes(base64.b64decode(report.score_plot(result)))
    faces = []
    for k, c in enumerate(result.crops):
        media.write_image(out / f"{name}.face{k}.png", report.overlay(c.image, c.heatmap))
        faces.append({"image": f"{name}.face{k}.png", "frame": c.frame, "face": c.face, "score": round(c.score, 3)})
    return {"file": f.name, "report": f"{name}.html", "verdict": v.label, "probability": v.probability,
            "reasons": list(v.reasons), "summary": report.summary(result), "label": result.label,
            "provenance": result.provenance,
            "plot": plot, "faces": faces, "identity": result.identity}


def run_extract(p: dict, out: Path) -> dict:
    """Extract faces into the named face set, then draw its contact sheet."""
    from .. import extract, media
    from ..faces import finder
    from ..faceset import FaceSet
    from ..faceset_cli import contact_sheet, info_table, sheet_groups
    ref = p.get("reference")
    qcfg = extract.quality_config(argparse.Namespace(), extract.stored_quality(p["faceset"]), ref is not None)
    cfg = extract.ExtractConfig(every=int(p.get("every", 1)), quality=qcfg, reference=ref,
                                detect=finder.DetectConfig(detector=p.get("detector", "hog")))
    summary = extract.extract(p["files"], p["faceset"], cfg)
    fs = FaceSet.open(p["faceset"])
    media.write_image(out / "sheet.png", contact_sheet(sheet_groups(fs, SHEET_KEPT, SHEET_PER_REASON)))
    return {**summary.to_json(), "faceset": Path(p["faceset"]).name, "summary": summary.table(),
            "info": info_table(fs), "sheet": "sheet.png"}


def run_train(p: dict, out: Path) -> dict:
    """Train (or resume) a swap model; previews and log.jsonl land in the model folder as they are made."""
    from ..swap import train
    cfg = train.TrainConfig(steps=int(p["steps"]), batch=int(p.get("batch", 32)), resume=bool(p.get("resume")),
                            preview_every=int(p.get("preview_every", 50)), save_every=int(p.get("save_every", 100)),
                            workers=int(p.get("workers", 0)), preset=p.get("preset", "lite"))
    return train.train(p["faceset_a"], p["faceset_b"], p["model"], cfg).to_json()


def run_swap(p: dict, out: Path) -> dict:
    """Swap B's face into the uploaded video or photo; a labelled output and a preview strip."""
    from .. import media
    from ..swap import convert
    src = Path(p["input"])
    output = out / (src.stem + ("_swap.png" if media.is_image_path(src) else "_swap.mp4"))
    max_frames = int(p["max_frames"]) if p.get("max_frames") else None
    settings = convert.SwapSettings(to=p.get("to", "b"), preview=str(out / "preview.png"), max_frames=max_frames)
    s = convert.swap(src, p["model"], output, settings)
    return {**s.to_json(), "input": src.name, "output": output.name, "preview": "preview.png"}


def run_lipsync(p: dict, out: Path) -> dict:
    """Make the uploaded video's mouth follow the uploaded speech; a labelled output and a preview strip."""
    from ..lipsync import synth
    output = out / (Path(p["video"]).stem + "_lipsync.mp4")
    r = synth.lipsync(p["video"], p["audio"], p["model"], output, synth.LipsyncConfig(texture=p.get("texture", "median")),
                      preview=out / "preview.png")
    return {**r.to_json(), "output": output.name, "preview": "preview.png"}


RUNNERS = {"detect": run_detect, "extract": run_extract, "train": run_train, "swap": run_swap,
           "lipsync": run_lipsync}


def main(folder: str) -> int:
    # the Stop button sends SIGINT; a server started in the background (`doppel ui &`, nohup) has SIGINT
    # ignored, and its workers would inherit that and never stop. A stop that still hangs dumps every
    # thread's stack into log.txt before the queue kills it (jobs.STOP_GRACE_S).
    interrupt.install(dump_after_s=STOP_GRACE_S - 10)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    folder = Path(folder)
    job = read_json(folder / "job.json")
    res = {"state": FAILED, "error": None, "result": None}
    try:
        if job is None or job.get("kind") not in RUNNERS:
            raise DoppelError(f"not a runnable job: {folder}")
        res["result"] = RUNNERS[job["kind"]](job["params"], folder / "out")
        res["state"] = DONE
    except KeyboardInterrupt:
        res.update(state=STOPPED, error="stopped on request")
    except DoppelError as e:
        res["error"] = str(e)
    except Exception as e:  # noqa: BLE001 - the page must say what broke, not spin
        traceback.print_exc()
        res["error"] = f"{e.__class__.__name__}: {e}"
    write_json(folder / "result.json", json.loads(json.dumps(res, default=str)))
    print(f"job {res['state']}" + (f": {res['error']}" if res["error"] else ""), file=sys.stderr)
    return 0 if res["state"] == DONE else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
