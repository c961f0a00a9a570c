"""ECG on the real MIT-BIH records: reading, the QRS detector, beat inputs, the protocol, bad records."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit.errors import SignalError
from cnnkit.ndconv.ecg.aami import AAMI, CLASSES, DS1, DS2, PACED, aami_class, class_index
from cnnkit.ndconv.ecg.beats import RR_FEATURES, beat_inputs, crop_windows, rr_features, window_length
from cnnkit.ndconv.ecg.qrs import detect_qrs, detection_scores, match_beats
from cnnkit.ndconv.ecg.records import EcgRecord, read_record


def test_protocol_splits_are_disjoint_and_complete():
    assert len(DS1) == len(DS2) == 22
    assert not set(DS1) & set(DS2) and not (set(DS1) | set(DS2)) & set(PACED)
    assert aami_class("N") == "N" and aami_class("A") == "S" and aami_class("E") == "V"
    assert aami_class("F") == "F" and aami_class("/") == "Q" and aami_class("+") is None  # rhythm change
    assert list(class_index(["L", "a", "V", "F", "f"])) == [0, 1, 2, 3, -1]
    assert set(AAMI.values()) == {*CLASSES, "Q"}


def test_read_record_and_reference_beats(mitdb):
    rec = read_record(mitdb / "100")
    assert rec.fs == 360 and rec.lead == "MLII" and rec.original_fs == 360
    assert rec.signal.dtype == np.float32 and len(rec.signal) == 650000
    assert len(rec.beats) == 2273 and rec.symbols.count("A") == 33  # the published counts of record 100
    # record 114 has its leads the other way round: MLII is the second signal
    assert read_record(mitdb / "114.hea").lead == "MLII"


def test_detector_finds_the_reference_beats(mitdb):
    rec = read_record(mitdb / "100")
    n = 2 * 60 * rec.fs
    found = detect_qrs(rec.signal[:n], rec.fs)
    scores = detection_scores(rec.beats[rec.beats < n], found, rec.fs)
    assert scores["se"] > 0.995 and scores["ppv"] > 0.995
    # the same minutes resampled to 250 Hz: the detector works in seconds, not samples
    from scipy.signal import resample_poly

    x250 = resample_poly(rec.signal[:n], 25, 36)
    found250 = detect_qrs(x250, 250)
    ref250 = np.round(rec.beats[rec.beats < n] * 250 / 360).astype(int)
    assert detection_scores(ref250, found250, 250)["se"] > 0.99


def test_matching_pairs_each_beat_once():
    ref = np.array([100, 400, 700, 1000])
    det = np.array([90, 105, 420, 1200])
    r, d = match_beats(ref, det, 360, tolerance_s=0.15)
    assert list(r) == [0, 1] and list(d) == [1, 2]  # 105 is nearer 100 than 90; 1200 is 200 samples off
    s = detection_scores(ref, det, 360)
    assert (s["tp"], s["fn"], s["fp"]) == (2, 2, 2)


def test_beat_inputs(mitdb):
    rec = read_record(mitdb / "119")  # ventricular bigeminy
    beats = beat_inputs(rec.signal, rec.fs, rec.beats)
    before, after = window_length()
    assert beats.windows.shape[:2] == (len(rec.beats), 2)
    assert crop_windows(beats.windows).shape == (len(rec.beats), 2, before + after)
    assert beats.rr.shape == (len(rec.beats), len(RR_FEATURES)) and np.isfinite(beats.rr).all()
    v = np.array([s == "V" for s in rec.symbols])
    # premature ventricular beats come early: log(pre / median RR) is lower than for normal beats
    assert beats.rr[v, 0].mean() < beats.rr[~v, 0].mean() - 0.2
    assert np.abs(beats.rr[:, 7] - np.r_[np.diff(rec.beats)[0], np.diff(rec.beats)] / 360).max() < 1e-3


def test_rr_relative_to_the_mean_still_flags_ectopy_when_it_dominates():
    # a patient whose beats are mostly early (0.6 s) between long pauses (2 s): relative to the median RR
    # the early beats look normal; relative to the 5-minute mean RR they still come early
    rr = np.tile([0.6, 0.6, 0.6, 2.0], 100)
    positions = np.r_[0, np.cumsum(rr)] * 360
    f = rr_features(positions, 360)
    early = np.r_[False, rr < 1.0]
    pre_median = f[:, RR_FEATURES.index("pre")]
    pre_mean = f[:, RR_FEATURES.index("pre/average")]
    assert abs(pre_median[early].mean()) < 0.05  # median-relative: indistinguishable from normal
    assert pre_mean[early].mean() < -0.4  # mean-relative: early


def test_rr_feature_selection():
    from cnnkit.ndconv.ecg.beats import select_rr
    from cnnkit.ndconv.ecg.train import EcgSettings

    rr = np.arange(2 * len(RR_FEATURES), dtype=np.float32).reshape(2, -1)
    assert select_rr(rr, ("post", "pre")).tolist() == [[1, 0], [len(RR_FEATURES) + 1, len(RR_FEATURES)]]
    with pytest.raises(ValueError, match="unknown RR features"):
        select_rr(rr, ("pre", "heart-rate"))
    with pytest.raises(ValueError, match="unknown RR features"):
        EcgSettings(rr_features=("pre", "heart-rate"))
    assert EcgSettings(rr_features=("pre", "post")).model_config().side_features == 2
    assert EcgSettings(use_rr=False).model_config().side_features == 0


def test_rr_features_need_beats():
    with pytest.raises(SignalError, match="at least 3"):
        rr_features(np.array([10, 400]), 360)


def test_other_rates_are_resampled_and_bad_records_refused(mitdb, tmp_path):
    rec = read_record(mitdb / "100")
    from scipy.signal import resample_poly

    x = resample_poly(rec.signal[: 60 * 360], 25, 36).astype(np.float32)  # one minute at 250 Hz
    np.save(tmp_path / "a.npy", x)
    got = read_record(tmp_path / "a.npy", sampling_rate=250)
    assert got.fs == 360 and got.original_fs == 250 and abs(len(got.signal) - 60 * 360) <= 2
    with pytest.raises(SignalError, match="sampling rate"):
        read_record(tmp_path / "a.npy")
    with pytest.raises(SignalError, match="at least 100 Hz"):
        read_record(tmp_path / "a.npy", sampling_rate=50)
    np.save(tmp_path / "short.npy", x[:1000])
    with pytest.raises(SignalError, match="at least 10 s"):
        read_record(tmp_path / "short.npy", sampling_rate=250)
    with pytest.raises(SignalError, match="no lead 'V9'"):
        read_record(mitdb / "100", lead="V9")
    with pytest.raises(SignalError, match="lead index 5"):
        read_record(mitdb / "100", lead=5)
    with pytest.raises(SignalError, match="no WFDB record"):
        read_record(tmp_path / "nothing")
    with pytest.raises(SignalError, match="is a folder"):
        read_record(tmp_path)
    (tmp_path / "bad.hea").write_text("this is not a header\n")
    with pytest.raises(SignalError, match="cannot read WFDB record"):
        read_record(tmp_path / "bad")
    np.save(tmp_path / "flat.npy", np.zeros(20 * 360, dtype=np.float32))
    flat = read_record(tmp_path / "flat.npy", sampling_rate=360)
    with pytest.raises(SignalError, match="flat"):
        beat_inputs(flat.signal, flat.fs, np.arange(100, 7000, 300))


def test_csv_record_with_two_leads(mitdb, tmp_path):
    rec = read_record(mitdb / "100")
    two = np.stack([rec.signal[: 12 * 360], -rec.signal[: 12 * 360]], axis=1)
    np.savetxt(tmp_path / "r.csv", two, delimiter=",")
    with pytest.raises(SignalError, match="2 unnamed columns; say which one holds lead MLII"):
        read_record(tmp_path / "r.csv", sampling_rate=360)
    got = read_record(tmp_path / "r.csv", sampling_rate=360, lead=0)
    assert isinstance(got, EcgRecord) and np.allclose(got.signal, two[:, 0], atol=1e-4)


def test_training_refuses_test_patients(mitdb):
    from cnnkit.ndconv.ecg.train import train_ecg

    with pytest.raises(ValueError, match="DS2 test set"):
        train_ecg(mitdb, train_records=("101", "100"))


def test_classify_a_raw_record(small_ecg_model, mitdb, tmp_path, capsys):
    from cnnkit.cli.main import main
    from cnnkit.ndconv.ecg.classify import classify_record

    rec = read_record(mitdb / "100")
    np.save(tmp_path / "raw.npy", rec.signal[: 60 * 360])  # a minute, no annotations
    result = classify_record(tmp_path / "raw.npy", small_ecg_model, sampling_rate=360, device="cpu")
    assert result.source == "detected" and 70 <= len(result.labels) <= 80  # record 100 beats ~75 / min
    assert sum(result.counts().values()) == len(result.labels) and result.probabilities.shape[1] == 4
    code = main(["ndconv", "ecg", "classify", str(tmp_path / "raw.npy"), "--fs", "360", "--model",
                 str(small_ecg_model), "--out", str(tmp_path / "b.csv"), "--plot", str(tmp_path / "b.png"),
                 "--report", str(tmp_path / "b.md"), "--device", "cpu"])
    assert code == 0 and "labels:" in capsys.readouterr().out
    assert "beats" in (tmp_path / "b.md").read_text()
    lines = (tmp_path / "b.csv").read_text().splitlines()
    assert lines[0] == "time_s,sample,label,probability" and len(lines) == len(result.labels) + 1
    assert (tmp_path / "b.png").stat().st_size > 5000
    np.save(tmp_path / "tiny.npy", rec.signal[:1000])
    code = main(["ndconv", "ecg", "classify", str(tmp_path / "tiny.npy"), "--fs", "360", "--model",
                 str(small_ecg_model)])
    err = capsys.readouterr().err
    assert code == 2 and "at least 10 s" in err and err.count("\n") == 1


def test_evaluate_with_detected_beats(small_ecg_model, mitdb):
    from cnnkit.ndconv.ecg.train import evaluate_ecg

    report = evaluate_ecg(small_ecg_model, mitdb, records=("100",), positions="detected", device="cpu")
    assert report["qrs"]["se"] > 0.99 and report["qrs"]["ppv"] > 0.99
    assert sum(map(sum, report["confusion"])) == report["qrs"]["tp"]  # every matched beat is scored once
    assert {c["class"] for c in report["classes"]} == set(CLASSES)


def test_rr_logistic_fits_a_linear_rule_deterministically():
    from cnnkit.ndconv.ecg.rr_logistic import fit_rr_logistic

    rng = np.random.default_rng(0)
    x = (rng.normal(size=(600, 3)) * [1.0, 5.0, 0.1] + [0.0, 10.0, 0.0]).astype(np.float32)
    y = np.select([x[:, 2] < -0.1, x[:, 0] > 0.8], [2, 1], 0)  # classes 0-2 by linear rules; class 3 absent
    a = fit_rr_logistic(x, y, classes=4)
    b = fit_rr_logistic(x, y, classes=4)
    import torch

    with torch.no_grad():
        pa, pb = a(torch.from_numpy(x)), b(torch.from_numpy(x))
    assert torch.equal(pa, pb)  # full-batch L-BFGS: no randomness
    pred = pa.argmax(1).numpy()
    assert (pred == y).mean() > 0.9 and not (pred == 3).any()  # a class with no examples is never chosen
    assert np.allclose(a.mean.numpy(), x.mean(0), atol=1e-4)  # standardisation is stored with the weights
    with pytest.raises(ValueError, match="features"):
        fit_rr_logistic(x[:, 0], y, classes=4)


def test_ensemble_mixes_network_and_rr_model_probabilities():
    import torch

    from cnnkit.ndconv.ecg.ensemble import EcgEnsemble
    from cnnkit.ndconv.ecg.train import EcgSettings

    s = EcgSettings(widths=(4, 8), rr_features=("pre", "post"), members=2, rr_share=0.25,
                    rr_model_features=("post", "pre/average"))
    assert s.side_names == ("pre", "post", "pre/average")  # union, in the order of RR_FEATURES
    ens = EcgEnsemble(s.model_config(), members=2, cnn_features=s.cnn_features,
                      rr_model_features=s.rr_model_inputs, rr_share=0.25, channels=s.channels).eval()
    x = torch.randn(5, 2, 128)
    side = torch.randn(5, 3)
    assert s.channels == (1,)  # the networks see the beat minus the median beat, not the beat itself
    with torch.no_grad():
        p = ens(x, side).exp()
        nets = torch.stack([torch.softmax(n(x[:, 1:], side[:, :2]), 1) for n in ens.networks]).mean(0)
        rr = torch.softmax(ens.rr_model(side[:, 1:]), 1)
    assert torch.allclose(p, 0.75 * nets + 0.25 * rr, atol=1e-6) and torch.allclose(p.sum(1), torch.ones(5))
    with pytest.raises(ValueError, match="RR features pre, post, pre/average"):
        ens(x, side[:, :2])
    with pytest.raises(ValueError, match="rr_share"):
        EcgSettings(rr_share=1.0)
    from cnnkit.ndconv.ecg.train import CNN_FEATURES

    assert EcgSettings(rr_share=0.0).side_names == CNN_FEATURES  # no RR model: only the networks' features
    with pytest.raises(ValueError, match="channels"):
        EcgSettings(channels=(2,))
    with pytest.raises(ValueError, match="channels"):
        EcgEnsemble(s.model_config(), members=1, cnn_features=s.cnn_features, rr_model_features=(), rr_share=0.0,
                    channels=(0, 1))  # two channels named, the networks take one


def test_checkpoint_holds_the_whole_ensemble(small_ecg_model, tmp_path):
    import json

    from safetensors.torch import load_file, save_file

    from cnnkit.errors import CheckpointError
    from cnnkit.ndconv.ecg.ensemble import EcgEnsemble
    from cnnkit.ndconv.ecg.train import RR_MODEL_FEATURES, load_ecg

    ck = load_ecg(small_ecg_model, device="cpu")
    assert isinstance(ck.model, EcgEnsemble) and len(ck.model.networks) == 3
    assert ck.info["ensemble"]["rr_model_features"] == list(RR_MODEL_FEATURES)
    assert len(ck.info["best_epochs"]) == 3 and ck.info["validation_score"] is not None
    assert ck.model.rr_model.scale.abs().sum() > 0 and bool((ck.model.rr_model.linear.weight != 0).any())
    # info that does not match the weights (two networks named, three stored) is refused with a message
    from safetensors import safe_open

    with safe_open(str(small_ecg_model), framework="pt") as f:
        meta = json.loads(f.metadata()["cnnkit_ndconv"])
    meta["info"]["ensemble"]["members"] = 2
    bad = tmp_path / "bad.safetensors"
    save_file(load_file(str(small_ecg_model)), str(bad), metadata={"cnnkit_ndconv": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="weights do not match"):
        load_ecg(bad, device="cpu")
    meta["info"]["ensemble"]["members"] = 3
    meta["info"]["rr_features"] = ["pre"]  # names other inputs than the ensemble reads
    save_file(load_file(str(small_ecg_model)), str(bad), metadata={"cnnkit_ndconv": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="other beat inputs"):
        load_ecg(bad, device="cpu")


def test_single_network_checkpoints_of_earlier_releases_still_load(mitdb, tmp_path):
    from cnnkit.ndconv.checkpoint import save_checkpoint
    from cnnkit.ndconv.ecg.train import EcgSettings, evaluate_ecg, load_ecg
    from cnnkit.ndconv.models import build_model

    s = EcgSettings(widths=(4, 8), rr_features=("pre", "post"), rr_share=0.0, members=1, channels=(0, 1))
    before, after = window_length()
    path = save_checkpoint(tmp_path / "old.safetensors", build_model(s.model_config()), task="ecg",
                           architecture="resnet", config=s.model_config(),
                           info={"classes": list(CLASSES), "model_fs": 180, "window": [before, after],
                                 "rr_features": ["pre", "post"], "use_rr": True})
    ck = load_ecg(path, device="cpu")
    assert ck.architecture == "resnet"
    report = evaluate_ecg(path, mitdb, records=("100",), device="cpu")
    assert sum(map(sum, report["confusion"])) > 2000
