"""The whole make-a-fake path through the pages: two face sets, training with a stop and a resume, a swap."""
from __future__ import annotations

import re

import pytest

from .client import get, request, submit, wait


def extract(base: str, name: str, files, every: int = 1) -> str:
    job = submit(base, "/extract", {"name": name, "every": str(every)}, [("media", f.name, f.read_bytes()) for f in files])
    done = wait(base, job, 180)
    assert done["state"] == "done", done["error"]
    page = get(base, f"/jobs/{job}")[2]
    sheet = re.search(r'class="sheet" src="([^"]+)"', page)
    assert sheet and get(base, sheet.group(1))[2][:4] == b"\x89PNG"
    return job


@pytest.mark.slow
def test_faceset_train_stop_resume_swap(ui, data_dir):
    base, server = ui
    extract(base, "iplap", [data_dir / "video" / "iplap_129.mp4"], every=8)
    extract(base, "powell", sorted((data_dir / "faces" / "lfw" / "Colin_Powell").glob("*.jpg"))[:20])
    assert server.app.facesets() == ["iplap", "powell"]
    assert "<option>iplap</option>" in get(base, "/train")[2]

    form = {"faceset_a": "iplap", "faceset_b": "powell", "model": "m", "steps": "100000", "batch": "4",
            "preview_every": "3", "save_every": "1000"}
    job = submit(base, "/train", form)
    previews = server.app.root / "models" / "m" / "previews"
    running = wait(base, job, 180, until=lambda j: j["state"] in ("failed", "done") or any(previews.glob("step_*.png")))
    assert running["state"] == "running", running["error"]
    page = get(base, f"/jobs/{job}")[2]  # a reload finds the live job: preview, label, Stop button
    assert 'class="preview"' in page and "SYNTHETIC" in page and ">Stop</button>" in page
    assert 'http-equiv="refresh"' in page
    assert submit(base, "/jobs/" + job + "/stop") == job
    stopped = wait(base, job, 90)
    assert stopped["state"] == "stopped"
    assert (server.app.root / "models" / "m" / "model.safetensors").is_file()  # Stop saved a checkpoint
    page = get(base, f"/jobs/{job}")[2]
    assert "resume to continue" in page.replace("&ldquo;", "").replace("&rdquo;", "")

    step = int(re.search(r"step_(\d+)", sorted(previews.glob("*.png"))[-1].name)[1])
    resumed = submit(base, "/train", {**form, "steps": str(step + 3), "resume": "on"})
    done = wait(base, resumed, 180)
    assert done["state"] == "done", done["error"]
    assert done["result"]["step"] == step + 3 and done["result"]["steps_run"] <= 3 + 3

    clip = data_dir / "video" / "iplap_129.mp4"
    job = submit(base, "/swap", {"model": "m", "max_frames": "12"}, [("media", clip.name, clip.read_bytes())])
    done = wait(base, job, 180)
    assert done["state"] == "done", done["error"]
    page = get(base, f"/jobs/{job}")[2]
    video = re.search(r'<video class="output" src="([^"]+)"', page)
    assert video and "SYNTHETIC: this output was made by doppel" in page
    status, headers, body = get(base, video.group(1))
    assert status == 200 and headers["Content-Type"] == "video/mp4" and body[4:8] == b"ftyp"
    status, headers, part = request(base, "GET", video.group(1), headers={"Range": "bytes=0-99"})
    assert status == 206 and part == body[:100] and headers["Content-Range"] == f"bytes 0-99/{len(body)}"


@pytest.mark.slow
def test_lipsync_tab_plays_a_labelled_video(ui, data_dir):
    from doppel.lipsync import model, train
    base, server = ui
    lip = server.app.root / "lipsync" / "tiny.lip"  # a tiny model, as tests/lipsync makes one
    train.train([str(data_dir / "talking" / "retalking_face_5.mp4")], lip,
                train.TrainConfig(steps=30, seq_len=150, batch=4), model.LipConfig(hidden=16, n_coeffs=6))
    assert "<option>tiny.lip</option>" in get(base, "/lipsync")[2]
    video, speech = data_dir / "talking" / "retalking_face_5.mp4", data_dir / "speech" / "retalking_audio_1.wav"
    job = submit(base, "/lipsync", {"model": "tiny.lip"}, [("video", video.name, video.read_bytes()),
                                                           ("audio", speech.name, speech.read_bytes())])
    done = wait(base, job, 300)
    assert done["state"] == "done", done["error"]
    page = get(base, f"/jobs/{job}")[2]
    assert "made by doppel (lipsync)" in page and "made by doppel (lipsync-preview)" in page
    src = re.search(r'<video class="output" src="([^"]+)"', page).group(1)
    status, headers, body = get(base, src)
    assert status == 200 and body[4:8] == b"ftyp"
