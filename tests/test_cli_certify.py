"""``gpbound certify``: the digits demo (small), the model-file path, user errors."""
import json

import pytest

from gpbound.cli import main
from gpbound.report.plots import is_png


def test_certify_demo_prints_table_and_writes_png_then_reloads_files(tmp_path, capsys):
    png = tmp_path / "cert.png"
    saved = tmp_path / "saved"
    rc = main(["certify", "--demo", "digits", "--kernel", "rbf", "--train-size", "60", "--test-size", "20",
               "--steps", "3", "--out", str(png), "--save-demo", str(saved)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "test accuracy" in out and "median certified radius" in out
    assert "cert. acc. mean" in out and "cert. acc. Bayes" in out
    assert "Meaning:" in out and "probability >= 0.9 (delta = 0.1)" in out
    assert is_png(png)
    table = [line for line in out.splitlines() if line.count("|") == 2 and "eps" not in line]
    assert len(table) == 6
    # the saved demo, certified again from files, gives the same numbers
    cfg = json.loads((saved / "config.json").read_text())
    assert cfg["kernel"] == "rbf" and cfg["scale"] is True
    png2 = tmp_path / "cert2.png"
    rc = main(["certify", "--model", str(saved / "model.pt"), "--config", str(saved / "config.json"),
               "--data", str(saved / "data.npz"), "--out", str(png2)])
    out2 = capsys.readouterr().out
    assert rc == 0, out2
    assert is_png(png2)
    def pick(text):
        return [ln for ln in text.splitlines() if ln.startswith(("median", "test accuracy", "kernel"))]

    assert pick(out2) == pick(out)


def test_certify_user_errors(tmp_path, capsys):
    assert main(["certify"]) == 2
    assert "exactly one of" in capsys.readouterr().err
    assert main(["certify", "--model", str(tmp_path / "m.pt")]) == 2
    assert "--config" in capsys.readouterr().err
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"kernel": "matern"}))
    data = tmp_path / "d.npz"
    import numpy as np

    np.savez(data, X_train=np.zeros((3, 2)), y_train=np.ones(3), X_test=np.zeros((1, 2)), y_test=np.ones(1))
    assert main(["certify", "--model", str(tmp_path / "m.pt"), "--config", str(cfg), "--data", str(data)]) == 2
    assert "matern" in capsys.readouterr().err
    assert main(["certify", "--demo", "digits", "--delta", "2"]) == 2


def test_certify_help_documents_the_file_format(capsys):
    with pytest.raises(SystemExit):
        from gpbound.cli import build_parser

        build_parser().parse_args(["certify", "--help"])
    out = capsys.readouterr().out
    assert "weights_only" in out and "allow_pickle=False" in out and "X_train" in out
