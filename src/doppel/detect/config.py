"""Settings of the detect stage (scan, CNN shape, training): dataclasses and constants only, light to
import, so `doppel detect --help` does not load torch, OpenCV or dlib. The modules that use them
re-export them (scan.ScanConfig, detectors.CNNConfig, train.TrainConfig)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..faces.options import DetectConfig

WEIGHTS_DIR = Path(__file__).parent / "weights"
FUSION_CLIPS = ("retalking_face_4", "driving_d18", "driving_d20", "iplap_129")  # fold A
CALIB_CLIPS = ("retalking_face_5", "driving_d19", "source_s20")  # fold B
CHANGE_LEVEL = 4  # grey levels (of 255) a blend must move a pixel by to count as changed (TrainConfig.seg_weight)


@dataclass(frozen=True)
class CNNConfig:
    size: int = 64  # side of the aligned RGB crop
    coverage: float = 0.7  # landmark box share of the crop; leaves the hull boundary inside
    widths: tuple[int, ...] = (16, 32, 48, 64)  # channels per stage; all but the last are pooled 2x
    arch: str = "plain"  # "plain": one conv per stage; "resnet": a stride-2 stem, one residual block a stage;
    # "dlib": dlib's face-recognition ResNet (detect/dlibnet.py), its first len(widths) levels
    flip: bool = False  # score a face as the mean logit of its crop and its mirror image (training is unchanged)
    # "face": the crop centred on the face; "mouth": the face's rotation and scale (coverage is still the face's
    # landmark box share, so above 1 the crop holds less than the face), centred on the mouth
    region: str = "face"

    @classmethod
    def from_dict(cls, d: dict) -> "CNNConfig":
        """From a saved config (older ones have no `arch`: plain, no `flip`: off, no `region`: face)."""
        return cls(int(d["size"]), float(d["coverage"]), tuple(int(w) for w in d["widths"]), str(d.get("arch", "plain")),
                   bool(d.get("flip", False)), str(d.get("region", "face")))


# the shipped detector's CNN: ResNet-style, 1.2M parameters; measured on this 2-core machine at batch 64:
# 2.1 s a training step on one thread (112 px: 1.1 s), 5.6 ms a face to score (the plain 64 px CNN: 0.3 ms)
RESNET = CNNConfig(size=128, coverage=0.6, widths=(32, 64, 128, 256), arch="resnet")
# dlib's face-recognition ResNet (detect/dlibnet.py) without its last level, started from dlib's weights: 4.4M
# parameters; at the shipped CNN's crop (the training faces are kept at its pixel scale; dlib's own chips are 150 px
# at about coverage 0.83, the face 1.6x larger): 0.54 s a training step at batch 64 on two threads (RESNET 1.1 s),
# 5.3 ms a face to score on one (RESNET 5.9 ms)
DLIB = CNNConfig(size=128, coverage=0.6, widths=(32, 64, 128, 256), arch="dlib")
# the mouth CNN: the same net on a 64 px crop of the mouth at the face CNN's pixel scale (coverage 1.2 at 64 px is
# 0.6 at 128 px), a quarter of its cost; the lower face from the nostrils to the chin, cheek to cheek
MOUTH = CNNConfig(size=64, coverage=1.2, widths=(32, 64, 128, 256), arch="resnet", region="mouth")



@dataclass(frozen=True)
class ScanConfig:
    step: int = 3  # analyse every step-th frame (the previous frame is decoded too, for flicker)
    max_faces: int = 4  # largest faces analysed per frame
    fake_at: float = 0.7  # calibrated probability at or above which the verdict is FAKE
    real_at: float = 0.3  # at or below which it is REAL; between is UNCERTAIN
    keep_crops: int = 6  # most suspicious faces kept (with CNN heatmaps) for the report
    detect: DetectConfig = DetectConfig()  # face detector and tracker settings



@dataclass(frozen=True)
class TrainConfig:
    minutes: float = 14.0  # wall-clock budget; the CNN gets what data gathering and fitting leave
    per_person: int = 1000  # LFW photos per person (1000: all of them)
    video_every: int = 2  # frame spacing of faces taken from a training clip
    video_limit: int = 120  # faces per training clip
    heldout_every: int = 3  # frame spacing in the fusion and calibration clips (the scan's default step)
    heldout_limit: int = 96  # faces per fusion or calibration clip
    batch: int = 64  # CNN batch (half real, half fake)
    max_steps: int = 4000  # CNN step cap; the time budget usually ends training first
    lr: float = 2e-3  # CNN peak learning rate (cosine decay)
    chunk: int = 16  # analysed frames per pseudo-clip when calibrating the per-video score
    chunk_stride: int = 4  # start-frame spacing of pseudo-clips (overlapping)
    seed: int = 0  # seeds blends, batches and initialisation
    cnn: CNNConfig = RESNET  # CNN shape
    threads: int = 2  # torch threads for the CNN's steps (the blends are made in BATCH_WORKERS other processes)
    val: int = 300  # corpus identities of the fusion part whose real faces and blends validate the CNN as it trains
    checkpoint_minutes: float = 5.0  # CNN checkpoint (and validation) interval
    resume: bool = False  # continue the CNN from the checkpoint in the output folder
    fusion_clips: tuple[str, ...] = FUSION_CLIPS  # held out from CNN training, fit the fusion
    calib_clips: tuple[str, ...] = CALIB_CLIPS  # held out from everything else, calibrate and validate
    fakes: str | None = None  # folder of doppel-made fake videos <kind>_<clip>.mp4 (scripts/make_detect_fakes.py)
    fakes_train: tuple[str, ...] = ("swap",)  # kinds used for the CNN and the fusion; the rest only calibrate
    fake_share: float = 0.3  # share of the CNN's training fakes drawn from fake videos (when there are any)
    # share of blends given doppel's watermark, as if cut from a doppel output; real faces get it as often as
    # fakes do in all (the fake videos always carry it), so the mark tells the CNN nothing about the class
    mark_share: float = 0.5
    # CNN training crops take a landmark-box coverage drawn uniformly within +- this of cnn.coverage, so the
    # CNN does not hang on one exact scale (a scan crops every face at cnn.coverage); 0: always that one
    coverage_jitter: float = 0.0
    # share of the CNN's blends of a face whose clip or person holds other faces that are reenactment blends
    # (sbi.reenact_blend: the person's own mouth or lower face from another frame); 0: none
    reenact_share: float = 0.0
    # share of the CNN's other blends (self-blended or X-ray) that are generated blends instead: the face redrawn
    # by one of a bank of small autoencoders (simulate.py, trained at the start of the run) pasted back; 0: none
    gen_share: float = 0.0
    gen_bank: str | None = None  # the bank's file (set by train.train when gen_share is on; not an option)
    # share of the blends made through a part mask (the lower face or the mouth) rather than a face shape;
    # a mouth CNN wants most of its blends' edges inside its crop
    part_share: float = 0.3
    # weight of the CNN's auxiliary loss that asks a 1x1 convolution on its last feature map which cells of the
    # crop a blend changed (cnn_fit: Face X-ray's localisation target); training-only, 0: off
    seg_weight: float = 0.0
    # share of the learning rate a pretrained backbone's weights learn at (the dlib CNN's; the head: all of it)
    pretrained_lr_share: float = 0.1
    fake_limit: int = 60  # faces per fake video of a training clip (of a held-out clip: heldout_limit // 2)
    corpus: int = 0  # corpus identities (one photo each, ../data/corpus, train part) added to CNN training
    corpus_fusion: int = 0  # corpus identities of the fusion part added to the fusion (as photos: no temporal cues)
    init: str | tuple[str, ...] | None = None  # weights folder whose CNN (same shape) training starts from; several:
    # their CNNs averaged, weights and batch-norm statistics (a uniform weight soup); None: from scratch
    # weights folder whose CNN (region "mouth", from a `detect train --cnn mouth` run) becomes the new detector's
    # mouth CNN, as it is; its logit is the fusion's mouth_cnn, which the fusion may weigh or leave out
    mouth: str | None = None
    # weights folder whose face CNN (any shape, e.g. from a `detect train --cnn dlib` run) becomes the new detector's
    # partner CNN, as it is: the face score "cnn" is then the mean of the two CNNs' logits
    partner: str | None = None
    cache: str | None = None  # folder keeping the faces found, so a rerun skips finding them; None: no cache


