"""ECG (issue 20): de Chazal's morphology features, linear discriminants, leads of other recorders, reports."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit.errors import SignalError
from cnnkit.ndconv.ecg.beats import MARGIN, MODEL_FS, window_length
from cnnkit.ndconv.ecg.features import MORPHOLOGY_FEATURES, de_chazal_features, de_chazal_names, morphology_features
from cnnkit.ndconv.ecg.linear import fit_lda
from cnnkit.ndconv.ecg.records import closest_lead, read_record


def synthetic_beats(qrs_ms: float, t_height: float = 0.3) -> np.ndarray:
    """One beat window as beat_inputs cuts it: a triangle QRS of the given width (height 1) and a T bump."""
    before, after = window_length()
    t = (np.arange(before + after + 2 * MARGIN) - (MARGIN + before)) / MODEL_FS  # seconds from R
    half = qrs_ms / 2000
    qrs = np.clip(1 - np.abs(t) / half, 0, None)
    twave = t_height * np.exp(-0.5 * ((t - 0.3) / 0.04) ** 2)
    return (qrs + twave + 0.05)[None, :]  # + an isoelectric offset, which the features remove


def test_morphology_features_measure_width_and_t_wave():
    narrow = morphology_features(synthetic_beats(80))
    wide = morphology_features(synthetic_beats(160))
    assert narrow.shape == (1, len(MORPHOLOGY_FEATURES)) and narrow.dtype == np.float32
    q = MORPHOLOGY_FEATURES.index("qrs_duration")
    # |x| > 15 % of R on a triangle of base w spans 0.85 w (at 180 Hz: one sample is 5.6 ms)
    assert abs(narrow[0, q] - 0.85 * 0.080) < 0.012 and abs(wide[0, q] - 0.85 * 0.160) < 0.012
    # QRS samples from -50 to +100 ms, relative to the isoelectric level: 0 at -50 ms, the R wave (1) at 0 ms
    assert abs(narrow[0, MORPHOLOGY_FEATURES.index("qrs0")]) < 0.05
    assert abs(narrow[0, MORPHOLOGY_FEATURES.index("qrs3")] - 1.0) < 0.05
    t_peak = narrow[0, [MORPHOLOGY_FEATURES.index(f"t{i}") for i in range(9)]].max()
    assert abs(t_peak - 0.3) < 0.05
    flat_t = morphology_features(synthetic_beats(80, t_height=0.0))
    assert flat_t[0, MORPHOLOGY_FEATURES.index("t4")] < 0.01
    assert de_chazal_names(2)[:4] == ("pre_s", "post_s", "local_s", "average_s")
    assert len(de_chazal_names(2)) == 4 + 2 * len(MORPHOLOGY_FEATURES)


def test_lda_matches_the_gaussian_posterior_and_weights_classes():
    rng = np.random.default_rng(0)
    means = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    n = [2000, 50, 200]  # imbalanced, as N / S / V
    x = np.concatenate([rng.normal(m, 1.0, size=(k, 2)) for m, k in zip(means, n)]).astype(np.float32)
    y = np.repeat(np.arange(3), n)
    model = fit_lda(x, y, classes=4)  # class 3 absent
    with torch.no_grad():
        pred = model(torch.from_numpy(x)).argmax(1).numpy()
    assert not (pred == 3).any()
    # equal priors: the rare class is found about as often as the common one (~93 % each for unit Gaussians 3 apart)
    recall = [(pred[y == k] == k).mean() for k in range(3)]
    assert min(recall) > 0.85
    # the boundary between classes 0 and 1 of an equal-prior LDA lies half way (x0 = 1.5)
    probe = torch.tensor([[1.3, 0.0], [1.7, 0.0]])
    with torch.no_grad():
        assert model(probe).argmax(1).tolist() == [0, 1]
    unweighted = fit_lda(x, y, classes=4, weight_power=0.0)  # priors of the data: the rare class loses
    with torch.no_grad():
        rare = (unweighted(torch.from_numpy(x[y == 1])).argmax(1).numpy() == 1).mean()
    assert rare < recall[1]
    with pytest.raises(ValueError, match="labels"):
        fit_lda(x, y + 5, classes=4)


def test_de_chazal_features_on_two_leads(mitdb):
    x, y, records = de_chazal_features(mitdb, ("100",))
    assert x.shape == (2273, len(de_chazal_names(2))) and np.isfinite(x).all()
    assert set(records) == {"100"} and (y == 1).sum() == 33  # record 100's 33 A beats are S
    assert 0.6 < np.median(x[:, 0]) < 1.0  # pre-RR in seconds (record 100: about 75 beats / min)
    one, _, _ = de_chazal_features(mitdb, ("100",), leads=1)
    assert np.array_equal(one, x[:, :one.shape[1]])


def test_closest_lead_of_another_recorder():
    assert closest_lead(["V1", "V5"], "MLII") == 1
    assert closest_lead(["aVF", "I"], "MLII") == 0
    assert closest_lead(["ECG"], "MLII") == 0
    assert closest_lead(["RESP", "ABP"], "MLII") is None


def _write_wfdb(tmp_path, mitdb, names, fs):
    """Two minutes of record 100 as a WFDB record at `fs` with other lead names, and no annotations."""
    import fractions

    import wfdb
    from scipy.signal import resample_poly

    src = wfdb.rdrecord(str(mitdb / "100"), sampto=120 * 360)
    ratio = fractions.Fraction(fs, 360)
    sig = resample_poly(src.p_signal, ratio.numerator, ratio.denominator, axis=0)
    wfdb.wrsamp("other", fs=fs, units=["mV", "mV"], sig_name=names, p_signal=sig, fmt=["16", "16"],
                write_dir=str(tmp_path))
    return tmp_path / "other"


def test_record_without_the_trained_lead_uses_the_closest_with_a_warning(mitdb, tmp_path, caplog):
    path = _write_wfdb(tmp_path, mitdb, ["V1", "V5"], 250)
    with pytest.raises(SignalError, match="no lead 'MLII'.*V1, V5"):
        read_record(path)
    with caplog.at_level("WARNING"):
        rec = read_record(path, closest=True)
    assert rec.lead == "V5" and rec.lead_wanted == "MLII" and rec.original_fs == 250 and rec.fs == 360
    assert "using V5 instead" in caplog.text
    assert rec.beats is None  # no annotations: classify detects the beats itself
    assert read_record(path, lead="V1").lead_wanted is None


def test_classify_a_raw_record_of_another_recorder(small_ecg_model, mitdb, tmp_path, capsys):
    from cnnkit.cli.main import main

    path = _write_wfdb(tmp_path, mitdb, ["V1", "V5"], 250)
    code = main(["ndconv", "ecg", "classify", str(path), "--model", str(small_ecg_model), "--device", "cpu",
                 "--out", str(tmp_path / "b.csv"), "--plot", str(tmp_path / "b.png"),
                 "--report", str(tmp_path / "r.md")])
    out, err = capsys.readouterr()
    assert code == 0 and "no lead MLII" in err and "lead V5" in err and "resampled from 250 Hz" in out
    report = (tmp_path / "r.md").read_text()
    assert "lead V5 (the model was trained on MLII" in report and "b.png" in report
    assert "supraventricular ectopic (S)" in report and "ventricular ectopic (V)" in report
    rows = (tmp_path / "b.csv").read_text().splitlines()
    assert 140 <= len(rows) - 1 <= 160  # two minutes of record 100 (about 75 beats / min)
    code = main(["ndconv", "ecg", "classify", str(path), "--model", str(small_ecg_model), "--device", "cpu",
                 "--lead", "MLII", "--out", str(tmp_path / "c.csv"), "--plot", str(tmp_path / "c.png")])
    err = capsys.readouterr().err
    assert code == 2 and "no lead 'MLII'" in err  # a lead asked for by name must be there


def test_record_report_counts_runs():
    from cnnkit.ndconv.ecg.classify import BeatLabels, record_report
    from cnnkit.ndconv.ecg.records import EcgRecord

    rec = EcgRecord(name="x", signal=np.zeros(360 * 20, dtype=np.float32), fs=360, lead="MLII", original_fs=360)
    labels = ("N", "S", "S", "N", "V", "V", "V", "N", "S", "N")
    pos = np.arange(10) * 360 + 100
    r = record_report(BeatLabels(rec, pos, labels, np.zeros((10, 4)), ("N", "S", "V", "F"), "detected"))
    assert r["flagged"]["S"]["beats"] == 3 and r["flagged"]["S"]["couplets"] == 1
    assert r["flagged"]["V"]["runs_of_3_or_more"] == 1 and r["heart_rate_bpm"] == 60.0
    assert r["flagged"]["S"]["first_times_s"][0] == round(460 / 360, 2)


def test_evaluate_takes_a_lead(small_ecg_model, mitdb, capsys):
    from cnnkit.cli.main import main

    code = main(["ndconv", "ecg", "evaluate", "--model", str(small_ecg_model), "--data", str(mitdb), "--records", "100",
                 "--lead", "V5", "--device", "cpu"])
    assert code == 0 and "macro F1" in capsys.readouterr().out
    code = main(["ndconv", "ecg", "evaluate", "--model", str(small_ecg_model), "--data", str(mitdb), "--records", "100",
                 "--lead", "V2", "--device", "cpu"])
    assert code == 2 and "no lead 'V2'" in capsys.readouterr().err


def test_the_shipped_checkpoint_classifies_a_record(mitdb):
    from cnnkit.cli.ndconv.common import PRETRAINED
    from cnnkit.ndconv.ecg.aami import DS1
    from cnnkit.ndconv.ecg.train import CNN_FEATURES, evaluate_ecg, load_ecg

    path = PRETRAINED / "ecg.safetensors"
    assert path.is_file() and path.stat().st_size < 2_000_000  # small enough to ship in the wheel
    ck = load_ecg(path, device="cpu")
    assert ck.info["ensemble"]["channels"] == [1] and tuple(ck.info["ensemble"]["cnn_features"]) == CNN_FEATURES
    assert set(ck.info["train_records"]) | set(ck.info["validation_records"]) <= set(DS1)
    # Record 232 (DS2, never seen in training): atrial premature beats are the patient's dominant rhythm,
    # which the previous release called N (S Se 0.27 over DS2); the shipped model catches most of them.
    report = evaluate_ecg(path, mitdb, records=("232",), device="cpu")
    s_class = next(c for c in report["classes"] if c["class"] == "S")
    assert s_class["support"] == 1382 and s_class["se"] > 0.6 and s_class["ppv"] > 0.9


def test_lead_messages_say_what_to_pass(mitdb, tmp_path, capsys):
    from cnnkit.cli.main import main

    rec = read_record(mitdb / "100")
    np.savetxt(tmp_path / "two.csv", np.stack([rec.signal, rec.signal], 1)[: 30 * 360], delimiter=",")
    code = main(["ndconv", "ecg", "classify", str(tmp_path / "two.csv"), "--fs", "360"])
    err = capsys.readouterr().err
    assert code == 2 and "2 unnamed columns" in err and "--lead 0..1" in err
    code = main(["ndconv", "ecg", "classify", str(mitdb / "100"), "--lead", "V2"])
    err = capsys.readouterr().err
    assert code == 2 and "no lead 'V2'; it has MLII, V5" in err and "trained on" not in err
    code = main(["ndconv", "ecg", "classify", str(tmp_path / "two.csv"), "--fs", "360", "--lead", "1",
                 "--out", str(tmp_path / "b.csv"), "--plot", str(tmp_path / "b.png"),
                 "--report", str(tmp_path / "b.md")])
    assert code == 0 and (tmp_path / "b.md").read_text().startswith("# ECG record two\n")  # named without .csv
