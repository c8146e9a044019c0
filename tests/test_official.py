"""Official CycleGAN / pix2pix generators by name: the key mapping proven against faithful re-implementations of
the reference networks, download and cache through a local HTTP server, and clean errors (CPU only).

The reference structures below are written here, from the reference code's layer order, so the state-dict keys the
tests serve come from real nested modules and not from the code under test.
"""

from __future__ import annotations

import functools
import hashlib
import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from httpserver import Server
from PIL import Image
from torch import Tensor, nn
from typer.testing import CliRunner, Result

from translate.cli import app
from translate.core import checkpoint
from translate.deploy import official
from translate.errors import ModelError
from translate.imageio import load_image, to_float, to_uint8
from translate.networks.unet import UnetGenerator
from translate.recipes.restore import load_generator

pytestmark = pytest.mark.usefixtures("one_torch_thread")
RUNNER = CliRunner()
RELEASE = {  # the names in ../shared/REFERENCES.md, section "Official public data and weights"
    "cyclegan": [
        "apple2orange",
        "orange2apple",
        "summer2winter_yosemite",
        "winter2summer_yosemite",
        "horse2zebra",
        "zebra2horse",
        "monet2photo",
        "style_monet",
        "style_cezanne",
        "style_ukiyoe",
        "style_vangogh",
        "sat2map",
        "map2sat",
        "cityscapes_photo2label",
        "cityscapes_label2photo",
        "facades_photo2label",
        "facades_label2photo",
        "iphone2dslr_flower",
    ],
    "pix2pix": ["edges2shoes", "sat2map", "map2sat", "facades_label2photo", "day2night"],
}


# ------------------------------------------------------------------------------- the reference networks

_instance_norm = functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)


class _ReferenceResnetBlock(nn.Module):
    """The reference ResnetBlock: reflect padding, instance norm, conv bias, no dropout."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=True),
            _instance_norm(dim),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=True),
            _instance_norm(dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)


class _ReferenceResnetGenerator(nn.Module):
    """The reference ResnetGenerator (ngf 64, 9 blocks by default) as one Sequential `model`."""

    def __init__(self, ngf: int = 64, n_blocks: int = 9) -> None:
        super().__init__()
        model: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(3, ngf, kernel_size=7, padding=0, bias=True),
            _instance_norm(ngf),
            nn.ReLU(True),
        ]
        for i in range(2):
            mult = 2**i
            model += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1, bias=True),
                _instance_norm(ngf * mult * 2),
                nn.ReLU(True),
            ]
        model += [_ReferenceResnetBlock(ngf * 4) for _ in range(n_blocks)]
        for i in range(2):
            mult = 2 ** (2 - i)
            model += [
                nn.ConvTranspose2d(
                    ngf * mult, ngf * mult // 2, kernel_size=3, stride=2, padding=1, output_padding=1, bias=True
                ),
                _instance_norm(ngf * mult // 2),
                nn.ReLU(True),
            ]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class _ReferenceUnetBlock(nn.Module):
    """The reference UnetSkipConnectionBlock with batch norm (so no conv bias), in-place activations included."""

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        input_nc: int | None = None,
        submodule: nn.Module | None = None,
        *,
        outermost: bool = False,
        innermost: bool = False,
        use_dropout: bool = False,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        downconv = nn.Conv2d(input_nc or outer_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=False)
        downrelu, downnorm = nn.LeakyReLU(0.2, True), nn.BatchNorm2d(inner_nc)
        uprelu, upnorm = nn.ReLU(True), nn.BatchNorm2d(outer_nc)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            model = [downconv, submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=False)
            model = [downrelu, downconv, uprelu, upconv, upnorm]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=False)
            model = [downrelu, downconv, downnorm, submodule, uprelu, upconv, upnorm]
            model += [nn.Dropout(0.5)] if use_dropout else []
        self.model = nn.Sequential(*model)

    def forward(self, x: Tensor) -> Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class _ReferenceUnetGenerator(nn.Module):
    """The reference UnetGenerator: blocks built from the innermost out, `num_downs` levels."""

    def __init__(self, num_downs: int = 8, ngf: int = 64) -> None:
        super().__init__()
        block = _ReferenceUnetBlock(ngf * 8, ngf * 8, innermost=True)
        for _ in range(num_downs - 5):
            block = _ReferenceUnetBlock(ngf * 8, ngf * 8, submodule=block, use_dropout=True)
        block = _ReferenceUnetBlock(ngf * 4, ngf * 8, submodule=block)
        block = _ReferenceUnetBlock(ngf * 2, ngf * 4, submodule=block)
        block = _ReferenceUnetBlock(ngf, ngf * 2, submodule=block)
        self.model = _ReferenceUnetBlock(3, ngf, input_nc=3, submodule=block, outermost=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


def _reference_unet(num_downs: int, ngf: int, seed: int) -> _ReferenceUnetGenerator:
    """Random weights and batch-norm running statistics far from (0, 1), so eval mode really uses them."""
    torch.manual_seed(seed)
    net = _ReferenceUnetGenerator(num_downs, ngf)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(123)
    return net.eval()


def _with_instance_norm_stats(net: nn.Module) -> dict[str, Tensor]:
    """The state dict as PyTorch < 0.4 saved it: running statistics for every InstanceNorm as well."""
    state = dict(net.state_dict())
    for name, m in net.named_modules():
        if isinstance(m, nn.InstanceNorm2d):
            state[f"{name}.running_mean"] = torch.rand(m.num_features)
            state[f"{name}.running_var"] = torch.rand(m.num_features) + 0.5
            state[f"{name}.num_batches_tracked"] = torch.tensor(7)
    return state


@pytest.fixture(scope="module")
def resnet() -> _ReferenceResnetGenerator:
    torch.manual_seed(0)
    return _ReferenceResnetGenerator().eval()


# ----------------------------------------------------------------------------------------------- helpers


def _serve(server: Server, family: str, file: str, state: object) -> Path:
    """Put a .pth file where the release keeps it, on the local server; returns its path there."""
    path = server.root / official.FAMILIES[family].folder.strip("/") / f"{file}.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def _cli(*args: str | Path) -> Result:
    return RUNNER.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def _assert_clean_failure(result: Result, code: int = 1) -> str:
    """Exit code `code` (1: a failed run, 2: a usage error) with exactly one `error:` line and no traceback; returns
    that line."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit), result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def _photos(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cache(tmp_path: Path, family: str, name: str) -> tuple[Path, Path]:
    """(the downloaded .pth, the converted checkpoint) of official model NAME."""
    folder = tmp_path / "home" / "models" / family
    return folder / f"{name.removeprefix('pix2pix-')}.pth", folder / f"{name}.safetensors"


# ------------------------------------------------------------------------------------------ the catalogue


def test_catalogue_has_every_release_file_under_a_distinct_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSLATE_MIRROR", "http://mirror.test/gans/")
    for family, files in RELEASE.items():
        models = [m for m in official.OFFICIAL_MODELS.values() if m.family == family]
        assert sorted(m.file for m in models) == sorted(files)
        assert all(m.description for m in models)
    assert official.lookup("sat2map").url == "http://mirror.test/gans/cyclegan/pretrained_models/sat2map.pth"
    assert official.lookup("pix2pix-sat2map").url == "http://mirror.test/gans/pix2pix/models-pytorch/sat2map.pth"
    for model in official.OFFICIAL_MODELS.values():  # "the other way" always names a model that goes back
        if model.reverse:
            assert official.lookup(model.reverse).reverse == model.name
    assert official.lookup("horse2zebra").reverse == "zebra2horse"
    with pytest.raises(ModelError, match="did you mean horse2zebra"):
        official.lookup("horse2zebr")


def test_translate_models_lists_shipped_and_official_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSLATE_HOME", str(tmp_path))
    result = _cli("models")
    assert result.exit_code == 0, result.output
    for name in ("mnist-dcgan", "horse2zebra", "style_monet", "sat2map", "pix2pix-sat2map", "pix2pix-edges2shoes"):
        assert f" {name} " in result.output
    assert str(tmp_path / "models") in result.output


def test_listing_and_lookup_do_not_import_torch() -> None:
    code = (
        "import sys; from translate.deploy import official; from translate.deploy.models import named_models; "
        "assert len(named_models()) >= len(official.OFFICIAL_MODELS); assert 'torch' not in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# ----------------------------------------------------------------------------------- the key conversion


@pytest.mark.parametrize("old_pytorch", [False, True], ids=["plain", "instance-norm-stats"])
def test_resnet_conversion_computes_what_the_reference_computes(
    resnet: _ReferenceResnetGenerator, old_pytorch: bool
) -> None:
    state = _with_instance_norm_stats(resnet) if old_pytorch else resnet.state_dict()
    config, ours = official.from_state_dict("cyclegan", state, source="test")
    assert (config.num_blocks, config.generator_channels, config.norm) == (9, 64, "instance")
    x = torch.rand(1, 3, 32, 36) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(ours(x), resnet(x), rtol=0, atol=1e-5)


def test_unet_conversion_walks_any_depth() -> None:
    """6 levels (one dropout level) at 4 base channels: the renaming follows the nesting, not a fixed table."""
    reference = _reference_unet(6, 4, seed=1)
    ours = UnetGenerator(3, 3, depth=6, base_channels=4, norm="batch", dropout=0.5)
    names = official.unet_official_names(6).__getitem__
    state = official.convert(reference.state_dict(), ours, names, source="test", what="U-Net")
    ours.load_state_dict(state, strict=True)
    ours.eval()
    x = torch.rand(2, 3, 64, 128) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=1e-5)


def test_pix2pix_fetch_converts_the_release_file(server: Server, tmp_path: Path) -> None:
    """The paper's U-Net-256 with random batch-norm statistics, saved as PyTorch 0.4.0 did (no step counters)."""
    reference = _reference_unet(8, 64, seed=2)
    state = {k: v for k, v in reference.state_dict().items() if not k.endswith("num_batches_tracked")}
    served = _serve(server, "pix2pix", "facades_label2photo", state)

    path = official.fetch("pix2pix-facades_label2photo", progress=False)

    pth, converted = _cache(tmp_path, "pix2pix", "pix2pix-facades_label2photo")
    assert path == converted and pth.is_file()
    meta = checkpoint.read(path).meta
    assert (meta["recipe"], meta["modules"]) == ("pix2pix", ["G"])
    config = meta["config"]
    assert (config["depth"], config["generator_channels"], config["norm"], config["dropout"]) == (8, 64, "batch", 0.5)
    assert meta["info"]["source_sha256"] == hashlib.sha256(served.read_bytes()).hexdigest()
    ours, _ = load_generator(path, "a2b")
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=1e-5)


# -------------------------------------------------------------------------------------- end to end (CLI)


def test_apply_horse2zebra_downloads_once_then_works_offline(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resnet: _ReferenceResnetGenerator
) -> None:
    served = _serve(server, "cyclegan", "horse2zebra", _with_instance_norm_stats(resnet))
    photos = _photos(tmp_path / "photos")
    monkeypatch.chdir(tmp_path)  # no folder here is called horse2zebra

    first = _cli("apply", photos, "--model", "horse2zebra", "--device", "cpu", "--out", tmp_path / "zebras")

    assert first.exit_code == 0, first.output
    assert "official horse2zebra weights" in " ".join(first.output.split())
    pth, converted = _cache(tmp_path, "cyclegan", "horse2zebra")
    record = json.loads(pth.with_name("horse2zebra.pth.json").read_text())
    assert record["sha256"] == hashlib.sha256(served.read_bytes()).hexdigest()
    assert record["url"] == f"{server.url}/cyclegan/pretrained_models/horse2zebra.pth"
    assert checkpoint.read(converted).meta["info"]["source_url"] == record["url"]
    assert official.is_cached("horse2zebra") and not official.is_cached("zebra2horse")
    image = load_image(photos / "p0.png")
    with torch.no_grad():
        expected = to_uint8(resnet(torch.from_numpy(to_float(image[None]))).numpy())[0]
    written = load_image(tmp_path / "zebras" / "p0.png")
    assert np.abs(written.astype(int) - expected.astype(int)).max() <= 1

    server.stop()  # reuse is offline
    monkeypatch.setenv("TRANSLATE_MIRROR", f"http://127.0.0.1:{_closed_port()}")
    again = _cli("apply", photos, "--model", "horse2zebra", "--device", "cpu", "--out", tmp_path / "again")
    assert again.exit_code == 0, again.output
    assert np.array_equal(load_image(tmp_path / "again" / "p0.png"), written)

    line = _assert_clean_failure(_cli("apply", photos, "--model", "horse2zebra", "--direction", "b2a"), 2)
    assert "--model zebra2horse" in line

    with open(pth, "ab") as handle:
        handle.write(b"tampered")
    line = _assert_clean_failure(_cli("apply", photos, "--model", "horse2zebra", "--out", tmp_path / "t"))
    assert str(pth) in line and "corrupt" in line and "Delete it" in line

    pth.unlink()  # as the error says; the converted checkpoint still serves, with no download
    gone = _cli("apply", photos, "--model", "horse2zebra", "--device", "cpu", "--out", tmp_path / "gone")
    assert gone.exit_code == 0, gone.output

    converted.write_bytes(b"\xff" * 64)
    line = _assert_clean_failure(_cli("apply", photos, "--model", "horse2zebra", "--out", tmp_path / "u"))
    assert str(converted) in line and "Delete it" in line


def test_export_horse2zebra(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resnet: _ReferenceResnetGenerator
) -> None:
    _serve(server, "cyclegan", "horse2zebra", resnet.state_dict())
    monkeypatch.chdir(tmp_path)
    result = _cli("export", "horse2zebra")  # export checks ONNX Runtime against PyTorch itself
    assert result.exit_code == 0, result.output
    assert "parity fp32" in result.output and (tmp_path / "horse2zebra_a2b.onnx").is_file()


def test_unknown_name_suggests_and_points_to_the_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRANSLATE_HOME", str(tmp_path / "home"))
    line = _assert_clean_failure(_cli("apply", tmp_path, "--model", "horse2zebr"), 2)
    assert "did you mean horse2zebra" in line and "translate models" in line
    assert not (tmp_path / "home").exists()


class _RunsCode:
    """A pickle that would touch `canary` when unpickled without weights_only."""

    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (self.canary.touch, ())


@pytest.mark.parametrize("case", ["pix2pix as cyclegan", "missing key", "wrong width", "not a dict", "code"])
def test_a_file_that_does_not_fit_is_a_one_line_error(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resnet: _ReferenceResnetGenerator, case: str
) -> None:
    canary = tmp_path / "canary"
    if case == "pix2pix as cyclegan":
        state: object = _reference_unet(8, 2, seed=3).state_dict()
        expected = ["not an official CycleGAN ResNet-9 generator", "missing model.1.weight", "unexpected model.model"]
    elif case == "missing key":
        state = {k: v for k, v in resnet.state_dict().items() if k != "model.26.weight"}
        expected = ["not an official CycleGAN ResNet-9 generator: missing model.26.weight."]
    elif case == "wrong width":
        state = _ReferenceResnetGenerator(ngf=8, n_blocks=9).state_dict()
        expected = ["wrong shape model.1.weight 8×3×7×7 instead of 64×3×7×7"]
    elif case == "not a dict":
        state = [torch.zeros(3)]
        expected = ["holds a list, not a state dict"]
    else:
        state = {"model.1.weight": torch.zeros(3), "payload": _RunsCode(canary)}
        expected = ["cannot be loaded as plain tensors", "weights_only"]
    _serve(server, "cyclegan", "horse2zebra", state)
    monkeypatch.chdir(tmp_path)

    line = _assert_clean_failure(_cli("apply", _photos(tmp_path / "photos"), "--model", "horse2zebra"))

    pth, converted = _cache(tmp_path, "cyclegan", "horse2zebra")
    assert str(pth) in line and "Delete it and run again" in line
    for fragment in expected:
        assert fragment in line
    assert not converted.exists() and not canary.exists()
    assert not (tmp_path / "photos_a2b").exists()
