"""Neural containers, spike binning, NWB adapter, files and alignment by trial label (decoding.md §1)."""

from __future__ import annotations

import sys
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import neurorl as nr
from neurorl.decoding import align, bin_spikes, make_neural, read_neural, read_nwb, validate_neural, write_neural


def loop_counts(per_unit, events, window, bw):
    """Reference: count spikes in [lo, hi) bin by bin with plain loops."""
    n_bins = int(round((window[1] - window[0]) / bw))
    out = np.zeros((len(events), len(per_unit), n_bins), int)
    for i, ev in enumerate(events):
        for j, st in enumerate(per_unit):
            for b in range(n_bins):
                lo, hi = ev + window[0] + b * bw, ev + window[0] + (b + 1) * bw
                out[i, j, b] = sum(1 for s in st if lo <= s < hi)
    return out


# ----------------------------------------------------------------------------- make_neural
def test_make_neural_layout_and_coords():
    data = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    da = make_neural(data, trials=[7, 3], units=["a", "b", "c"], bin_width_s=0.1, align_event="cue",
                     trial_coords={"block": [1, 2]}, unit_coords={"region": ["CA1", "CA1", "PFC"]})
    assert da.dims == ("trial", "unit", "time") and da.name == "counts" and da.dtype == np.int64
    assert da.trial.values.tolist() == [7, 3]
    np.testing.assert_allclose(da.time.values, [0.05, 0.15, 0.25, 0.35])  # bin centres from the event
    assert da.attrs["bin_width_s"] == 0.1 and da.attrs["align_event"] == "cue" and da.attrs["units"] == "count"
    assert da.sel(trial=3, unit="b").values.tolist() == [16, 17, 18, 19]
    assert da.region.values.tolist() == ["CA1", "CA1", "PFC"]
    rate = make_neural(np.ones((2, 3)) * 2.5, trials=[0, 1], kind="rate")
    assert rate.shape == (2, 3, 1) and rate.name == "rate" and rate.dtype == np.float64


def test_make_neural_errors_name_the_problem():
    with pytest.raises(TypeError):
        make_neural(np.zeros((2, 1, 1)))  # trial labels are required (keyword-only)
    with pytest.raises(ValueError, match="duplicate"):
        make_neural(np.zeros((2, 1, 1), int), trials=[1, 1])
    with pytest.raises(ValueError, match=r"negative count -1 at trial 11"):
        make_neural(np.array([[[0]], [[-1]]]), trials=[10, 11])
    with pytest.raises(ValueError, match="non-integer"):
        make_neural(np.array([[[0.5]]]), trials=[0])
    with pytest.raises(ValueError, match="3 labels for 2"):
        make_neural(np.zeros((2, 1, 1), int), trials=[0, 1, 2])
    with pytest.raises(ValueError, match="dims"):
        validate_neural(make_neural(np.zeros((2, 1, 1), int), trials=[0, 1]).transpose("unit", "trial", "time"))


# ----------------------------------------------------------------------------- bin_spikes
def test_bin_spikes_matches_a_plain_loop():
    rng = np.random.default_rng(1)
    per_unit = [np.sort(rng.uniform(0, 20, k)) for k in (150, 0, 60)]
    events = np.array([2.0, 5.3, 5.5, 11.1, 17.25])  # overlapping windows on trials 2 and 3
    labels = [100, 101, 105, 106, 110]
    window, bw = (-0.3, 0.45), 0.05
    ref = loop_counts(per_unit, events, window, bw)
    flat_t = np.concatenate(per_unit)
    flat_u = np.concatenate([np.full(len(s), u) for u, s in zip(["x", "y", "z"], per_unit)])
    perm = rng.permutation(flat_t.size)  # spikes in any order
    da = bin_spikes(flat_t[perm], flat_u[perm], events, trials=labels, window=window, bin_width=bw,
                    units=["x", "y", "z"])
    np.testing.assert_array_equal(da.values, ref)
    assert da.trial.values.tolist() == labels and da.unit.values.tolist() == ["x", "y", "z"]
    np.testing.assert_allclose(da.time.values, -0.3 + bw * (np.arange(15) + 0.5))
    da2 = bin_spikes(dict(zip(["x", "y", "z"], per_unit)), None, events, trials=labels, window=window, bin_width=bw)
    np.testing.assert_array_equal(da2.values, ref)


def test_bin_spikes_edges_are_half_open():
    da = bin_spikes({"u": [0.999, 1.0, 1.1, 1.1999, 1.2]}, None, [1.0], trials=[0], window=(0.0, 0.2),
                    bin_width=0.1)
    assert da.values[0, 0].tolist() == [1, 2]  # 1.0 -> first bin, 1.1 and 1.1999 -> second, 1.2 outside


def test_bin_spikes_errors():
    with pytest.raises(ValueError, match="whole number"):
        bin_spikes({"u": [1.0]}, None, [0.0], trials=[0], window=(0.0, 0.25), bin_width=0.1)
    with pytest.raises(ValueError, match="NaN on trial 5"):
        bin_spikes({"u": [1.0]}, None, [0.0, np.nan], trials=[4, 5], window=(0.0, 0.2), bin_width=0.1)
    with pytest.raises(ValueError, match="spike unit labels"):
        bin_spikes([1.0, 2.0], ["a"], [0.0], trials=[0])


# ----------------------------------------------------------------------------- NWB
class _Table:
    def __init__(self, df):
        self.df = df

    def to_dataframe(self):
        return self.df.copy()


class _FakeNWB:
    """The two tables read_nwb uses, as pynwb's NWBFile exposes them (to_dataframe())."""

    def __init__(self, units, trials):
        self.units, self.trials = _Table(units), _Table(trials)


def _nwb_content():
    rng = np.random.default_rng(3)
    spikes = [np.sort(rng.uniform(0, 40, 120)) for _ in range(3)]
    trials = pd.DataFrame({"start_time": [0.0, 10.0, 20.0, 30.0], "stop_time": [5.0, 15.0, 25.0, 35.0],
                           "cue_time": [1.0, 11.5, 21.2, 31.7], "choice": [0, 1, 1, 0],
                           "label": [501, 502, 503, 504]}, index=pd.Index([0, 1, 2, 3], name="id"))
    units = pd.DataFrame({"region": ["CA1", "PFC", "PFC"], "spike_times": spikes},
                         index=pd.Index([10, 11, 12], name="id"))
    return spikes, trials, units


def test_read_nwb_adapter_on_a_minimal_fake_file():
    spikes, trials, units = _nwb_content()
    da = read_nwb(_FakeNWB(units, trials), align_to="cue_time", window=(-0.5, 1.0), bin_width=0.25,
                  trial_column="label", units=[12, 10])
    ref = loop_counts([spikes[2], spikes[0]], trials["cue_time"].to_numpy(), (-0.5, 1.0), 0.25)
    np.testing.assert_array_equal(da.values, ref)
    assert da.trial.values.tolist() == [501, 502, 503, 504]
    assert da.unit.values.tolist() == [12, 10] and da.region.values.tolist() == ["PFC", "CA1"]
    assert da.choice.values.tolist() == [0, 1, 1, 0] and da.attrs["align_event"] == "cue_time"
    with pytest.raises(ValueError, match="no column 'go_time'"):
        read_nwb(_FakeNWB(units, trials), align_to="go_time")


def test_read_nwb_without_pynwb_raises_an_install_hint(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pynwb", None)  # makes `import pynwb` fail
    with pytest.raises(ImportError, match="pip install pynwb"):
        read_nwb(tmp_path / "x.nwb")


def test_read_nwb_file_through_pynwb(tmp_path):
    pynwb = pytest.importorskip("pynwb")
    spikes, trials, units = _nwb_content()
    f = pynwb.NWBFile(session_description="test", identifier="t",
                      session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))
    f.add_trial_column("cue_time", "cue onset")
    f.add_trial_column("choice", "choice")
    for _, row in trials.iterrows():
        f.add_trial(start_time=row.start_time, stop_time=row.stop_time, cue_time=row.cue_time, choice=int(row.choice))
    f.add_unit_column("region", "brain region")
    for st, reg in zip(spikes, units["region"]):
        f.add_unit(spike_times=st, region=reg)
    path = tmp_path / "session.nwb"
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(f)
    da = read_nwb(path, align_to="cue_time", window=(-0.5, 1.0), bin_width=0.25)
    np.testing.assert_array_equal(da.values, loop_counts(spikes, trials["cue_time"].to_numpy(), (-0.5, 1.0), 0.25))
    assert da.trial.values.tolist() == [0, 1, 2, 3] and da.region.values.tolist() == ["CA1", "PFC", "PFC"]


# ----------------------------------------------------------------------------- files
def _rich_neural():
    rng = np.random.default_rng(0)
    return make_neural(rng.poisson(2, (5, 3, 4)), trials=[10, 11, 12, 14, 15], units=["a", "b", "c"],
                       bin_width_s=0.1, align_event="cue",
                       trial_coords={"block": [0, 0, 1, 1, 1], "correct": [True, False, True, True, False],
                                     "cond": ["x", "y", "x", "y", "x"], "rt": [0.3, np.nan, 0.5, 0.2, 0.4]},
                       unit_coords={"region": ["CA1", "CA1", "PFC"]},
                       attrs={"meta": {"probe": 1, "ok": True}, "flag": True, "none": None, "window_s": [-0.5, 1.0]})


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_write_read_round_trip(tmp_path, suffix):
    if suffix == ".zarr":
        pytest.importorskip("zarr")
    da = _rich_neural()
    path = write_neural(da, tmp_path / f"neural{suffix}")
    back = read_neural(path)
    xr.testing.assert_identical(back, da)
    assert back.attrs["meta"] == {"probe": 1, "ok": True} and back.attrs["flag"] is True and back.attrs["none"] is None
    ds = da.to_dataset().assign(v=("trial", np.linspace(0, 1, 5)))  # neural data with a latent beside it
    back_ds = read_neural(write_neural(ds, tmp_path / f"both{suffix}"))
    xr.testing.assert_identical(back_ds, ds)
    xr.testing.assert_identical(read_neural(tmp_path / f"both{suffix}", name="counts"), da)


def test_zarr_without_zarr_raises_an_install_hint(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "zarr", None)
    with pytest.raises(ImportError, match="pip install zarr"):
        write_neural(_rich_neural(), tmp_path / "x.zarr")


def test_write_neural_refuses_multiindex_and_unknown_suffix(tmp_path):
    da = _rich_neural()
    stacked = da.to_dataset().stack(tu=("trial", "unit"))
    with pytest.raises(ValueError, match="MultiIndex"):
        write_neural(stacked, tmp_path / "x.nc")
    with pytest.raises(ValueError, match="suffix"):
        write_neural(da, tmp_path / "x.h5")


# ----------------------------------------------------------------------------- align
@pytest.fixture(scope="module")
def session():
    return nr.simulate("q_learning", "mouse_bandit", n_subjects=3, n_trials=30, rng=5)


def _neural_for(labels, n_units=2):
    return make_neural(np.zeros((len(labels), n_units, 1), int), trials=labels)


def test_align_matches_by_label_not_position(session):
    labels = np.random.default_rng(0).permutation(30)
    neural, table = align(_neural_for(labels), session, subject=1)
    assert table.trial.values.tolist() == labels.tolist()
    np.testing.assert_array_equal(table["v"].values, session.latents["v"].sel(subject=1).values[labels])
    np.testing.assert_array_equal(table["choice"].values, session.trials["choice"].sel(subject=1).values[labels])
    assert float(table["alpha"]) == float(session.params["alpha"].sel(subject=1))


def test_align_errors_on_any_mismatch(session):
    with pytest.raises(ValueError, match=r"neural trials \[30, 31\] are not in the behavioural data"):
        align(_neural_for(list(range(2, 32))), session, subject=0)
    with pytest.raises(ValueError, match=r"behavioural trials \[0, 1\] have no neural data"):
        align(_neural_for(list(range(2, 30))), session, subject=0)
    _, table = align(_neural_for(list(range(2, 30))), session, subject=0, strict=False)
    assert table.sizes["trial"] == 28
    with pytest.raises(ValueError, match="3 subjects"):
        align(_neural_for(list(range(30))), session)
    with pytest.raises(ValueError, match="subject 7 is not"):
        align(_neural_for(list(range(30))), session, subject=7)
    other = _neural_for(list(range(30))).assign_coords(subject=2)
    with pytest.raises(ValueError, match="belong to subject 2"):
        align(other, session, subject=0)


def test_align_uses_trial_index_of_the_trials(session):
    """Data with their own trial labels (and padding): labels come from trial_index, never from positions."""
    sub = session.trials.isel(subject=[0])
    tr = nr.make_trials(
        sub["state"].values, sub["choice"].values, sub["reward"].values, trial_index=np.arange(30)[None] * 2 + 101,
        covariates={"block_trial": sub["block_trial"].values})
    latents = nr.replay("q_learning", tr)
    neural = _neural_for(np.arange(30)[::-1] * 2 + 101)
    _, table = align(neural, (tr, latents))
    np.testing.assert_array_equal(table["rpe"].values, latents["rpe"].values[0, ::-1])
    with pytest.raises(ValueError, match="not in the behavioural data"):
        align(neural, latents)  # latents alone carry positions 0..29, which are not these trials' labels
    padded = tr.assign(trial_index=tr["trial_index"].where(tr.trial < 25, -1),
                       valid=tr["valid"] & (tr.trial < 25))
    _, table = align(_neural_for(np.arange(25) * 2 + 101), padded)
    assert table.sizes["trial"] == 25
