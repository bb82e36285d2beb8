"""The command line: every bad input ends with exit code 2 and a message naming the culprit."""

from __future__ import annotations

import pytest

from unseen.cli import main


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_methods_lists_clswgan(capsys):
    code, out, _ = run_cli(capsys, "methods")
    assert code == 0 and "clswgan" in out and "CVPR 2018" in out


def test_help_explains_protocol_terms(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    for term in ("CZSL T1", "GZSL S, U, H", "calibrated", "AUSUC", "validation"):
        assert term in text


BAD_RUNS = [
    (["run", "nosuch", "--dataset", "demo"], "unknown method 'nosuch'"),
    (["run", "clswgan", "--dataset", "MARS", "--data-root", "."], "unknown dataset 'MARS'"),
    (["run", "clswgan", "--dataset", "FLO"], "needs --data-root"),
    (["run", "clswgan", "--dataset", "demo", "--set", "epochs=3"], "section.key=value"),
    (["run", "clswgan", "--dataset", "demo", "--set", "optim.lr=1"], "unknown section 'optim'"),
    (["run", "clswgan", "--dataset", "demo", "--set", "method.depth=3"], "depth"),
    (["run", "clswgan", "--dataset", "demo", "--set", "method.epochs=abc"], "'epochs' expects"),
    (["run", "clswgan", "--dataset", "demo", "--set", "data.semantics_x=1"], "semantics_x"),
    (["run", "clswgan", "--dataset", "demo", "--config", "/no/such.yaml"], "/no/such.yaml"),
    (["run", "clswgan", "--dataset", "demo", "--device", "cuda:7"], "cuda:7"),
    (["run", "clswgan", "--dataset", "demo", "--set", "selection.criterion=acc"], "criterion"),
    (["run", "clswgan", "--dataset", "demo", "--set", "selection.n_synthetic=[-5]"], "n_synthetic"),
    (
        ["run", "clswgan", "--dataset", "demo", "--set", "selection.classifier_epochs=[99]"],
        "classifier_epochs",
    ),
    (["run", "clswgan", "--dataset", "demo", "--set", "run.gpus=2"], "gpus"),
    (["run", "clswgan", "--dataset", "/no/data.npz"], "/no/data.npz"),
]


@pytest.mark.parametrize(("argv", "needle"), BAD_RUNS, ids=[b[1][:30] for b in BAD_RUNS])
def test_bad_run_arguments_exit_2(capsys, argv, needle, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = run_cli(capsys, *argv)
    assert code == 2, err
    assert needle in err
    assert "Traceback" not in err


def test_bad_config_files_exit_2(capsys, tmp_path):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("method: {epochs: [1, 2\n")
    code, _, err = run_cli(capsys, "run", "clswgan", "--dataset", "demo", "--config", str(bad_yaml))
    assert code == 2 and "bad.yaml" in err and "YAML" in err
    sec = tmp_path / "sec.yaml"
    sec.write_text("optimizer: {lr: 1}\n")
    code, _, err = run_cli(capsys, "run", "clswgan", "--dataset", "demo", "--config", str(sec))
    assert code == 2 and "optimizer" in err
    kind = tmp_path / "kind.yaml"
    kind.write_text("classifier: {kind: svm}\n")
    code, _, err = run_cli(
        capsys, "run", "clswgan", "--dataset", "demo", "--config", str(kind), "--out",
        str(tmp_path / "o"),
    )  # fmt: skip
    assert code == 2 and "svm" in err


def test_existing_results_need_force(capsys, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "run.yaml").write_text("method: clswgan\n")
    (out / "results.json").write_text("{}")
    code, _, err = run_cli(capsys, "run", "clswgan", "--dataset", "demo", "--out", str(out))
    assert code == 2 and "--force" in err
    assert (out / "results.json").read_text() == "{}"


def test_foreign_output_folder_exit_2(capsys, tmp_path):
    (tmp_path / "paper.tex").write_text("x")
    code, _, err = run_cli(capsys, "run", "clswgan", "--dataset", "demo", "--out", str(tmp_path))
    assert code == 2 and "no run.yaml" in err


def test_datasets_bad_roots_exit_2(capsys, tmp_path):
    code, _, err = run_cli(capsys, "datasets", "--data-root", str(tmp_path / "nope"))
    assert code == 2 and "nope" in err
    code, _, err = run_cli(capsys, "datasets", "--data-root", str(tmp_path))
    assert code == 2 and "no dataset" in err


def test_missing_features_file_is_named(capsys, shared_data, tmp_path):
    code, _, err = run_cli(
        capsys, "run", "clswgan", "--dataset", "AWA2", "--data-root", str(shared_data),
        "--out", str(tmp_path / "o"),
    )  # fmt: skip
    assert code == 2 and "res101.mat" in err and "Traceback" not in err


def test_datasets_reports_real_benchmarks(capsys, shared_data):
    code, out, _ = run_cli(capsys, "datasets", "--data-root", str(shared_data))
    assert code == 0
    expected = {
        "AWA1": ("50", "85", "19832", "4958", "5685"),
        "AWA2": ("50", "85", "23527", "5882", "7913"),
        "CUB": ("200", "312", "7057", "1764", "2967"),
        "SUN": ("717", "102", "10320", "2580", "1440"),
        "APY": ("32", "64", "5932", "1483", "7924"),
        "FLO": ("102", "1024", "5631", "1403", "1155"),
    }
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    for name, (c, d, tv, ts, tu) in expected.items():
        row = rows[name]
        assert row[1] == c and row[3] == d and row[4:7] == [tv, ts, tu], row
        from unseen.data.xlsa17 import feature_files

        present = feature_files(shared_data, name)  # detected without --features
        assert ("MISSING" in " ".join(row)) == (not present), row
        if present:
            assert f"{present[0]}:" in row


def test_convert_refuses_to_overwrite(capsys, shared_data, tmp_path):
    target = tmp_path / "flo.npz"
    target.write_bytes(b"user data")
    code, _, err = run_cli(
        capsys, "convert", "--data-root", str(shared_data), "--dataset", "FLO",
        "--features", "effnet_lite0.mat", "--out", str(target),
    )  # fmt: skip
    assert code == 2 and "flo.npz" in err
    assert target.read_bytes() == b"user data"
