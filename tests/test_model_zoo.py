"""The model zoo's own switches: plain-CNN family, CBAM maps, Deep-Emotion's warp, adapted ResNets."""
import pytest
import torch
import torch.nn as nn
import torchvision

from fer.config import RunConfig
from fer.data.preprocess import Preprocessing
from fer.models import count_parameters, create_model
from fer.models.blocks import CBAM, ResidualBlock, SqueezeExcite
from fer.models.resnet import PretrainedWeightsError
from fer.runs.checkpoint import checkpoint_payload, load_checkpoint, model_from_checkpoint
from fer.runs.writer import save_checkpoint


@pytest.mark.parametrize("depth", [1, 3, 5, 7])
def test_plain_cnn_depths(depth):
    model = create_model("plain_cnn", depth=depth)
    assert len(model.features) == depth
    assert model(torch.randn(2, 1, 48, 48)).shape == (2, 7)
    pools = sum(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert pools == min(depth, 4)  # never pools a 3×3 map away


def test_plain_cnn_switches_change_the_network():
    plain = create_model("plain_cnn")
    no_bn = create_model("plain_cnn", batchnorm=False, dropout=0.0, fc_dropout=0.0)
    assert any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.Dropout, nn.Dropout2d)) for m in no_bn.modules())
    skip = create_model("plain_cnn", residual=True)
    se = create_model("plain_cnn", attention="se")
    combo = create_model("plain_cnn", residual=True, attention="se")
    assert all(isinstance(b, ResidualBlock) and b.shortcut is not None for b in skip.features)
    assert any(isinstance(m, SqueezeExcite) for m in se.modules())
    assert all(b.shortcut is not None and isinstance(b.attention, SqueezeExcite) for b in combo.features)
    assert count_parameters(combo) > count_parameters(skip) > count_parameters(plain)
    with pytest.raises(ValueError, match="attention"):
        create_model("plain_cnn", attention="transformer")


def test_kaiming_init_is_a_switch():
    torch.manual_seed(0)
    kaiming = create_model("plain_cnn", kaiming_init=True).features[1][0].weight
    torch.manual_seed(0)
    default = create_model("plain_cnn", kaiming_init=False).features[1][0].weight
    # Block 2's first conv (32 → 64): fan-out Kaiming std sqrt(2/(64·9)) vs PyTorch's default 1/sqrt(3·32·9).
    assert abs(kaiming.std().item() - (2 / (64 * 9)) ** 0.5) < 0.003
    assert abs(default.std().item() - (1 / (3 * 32 * 9)) ** 0.5) < 0.003


def test_residual_block_is_really_a_skip_connection():
    block = ResidualBlock(8, 8, 2, True, 0.0, False, True, "none").eval()
    for m in block.body:
        if isinstance(m, nn.Conv2d):
            nn.init.zeros_(m.weight)
    x = torch.rand(1, 8, 6, 6)
    assert torch.allclose(block(x), torch.relu(x))  # zero body: the shortcut alone passes through


def test_cbam_model_returns_attention_maps():
    model = create_model("cbam_cnn").eval()
    maps = model.attention_maps(torch.randn(3, 1, 48, 48))
    assert [tuple(m.shape) for m in maps] == [(3, 1, 48, 48), (3, 1, 24, 24), (3, 1, 12, 12), (3, 1, 6, 6)]
    assert all(((m >= 0) & (m <= 1)).all() for m in maps)
    assert sum(isinstance(m, CBAM) for m in model.modules()) == 4


def test_deep_emotion_warp_starts_as_identity_and_learns():
    model = create_model("deep_emotion")
    x = torch.rand(2, 1, 48, 48)
    assert torch.allclose(model.warp(x), x, atol=1e-4)  # identity transform at initialisation
    model(x).sum().backward()
    assert model.fc_loc[2].weight.grad.abs().sum() > 0  # the localisation branch gets gradients


@pytest.mark.parametrize("channels", ["sum", "repeat"])
@pytest.mark.parametrize("stem", ["small", "imagenet"])
def test_resnet_adaptations(channels, stem):
    model = create_model("resnet18", channels=channels, stem=stem).eval()
    assert model.conv1.in_channels == (3 if channels == "repeat" else 1)
    assert model.conv1.kernel_size == ((3, 3) if stem == "small" else (7, 7))
    seen = {}

    def record(module, inputs, output):  # returns None, so the output is left alone
        seen["shape"] = output.shape

    handle = model.get_submodule(model.cam_layer).register_forward_hook(record)
    try:
        assert model(torch.randn(2, 1, 48, 48)).shape == (2, 7)
    finally:
        handle.remove()
    assert seen["shape"][-1] == (6 if stem == "small" else 7)


def test_resnet34_has_more_blocks():
    assert count_parameters(create_model("resnet34")) > 1.8 * count_parameters(create_model("resnet18"))


def test_pretrained_offline_without_file_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache: torchvision must download
    with pytest.raises(PretrainedWeightsError, match="weights_path"):
        create_model("resnet18", pretrained=True)
    with pytest.raises(PretrainedWeightsError, match="does not exist"):
        create_model("resnet18", weights_path=str(tmp_path / "missing.pth"))


def test_pretrained_weights_from_file_adapt_conv1(tmp_path):
    # A torchvision ResNet-18 with ImageNet-shaped weights (random here: no internet in tests) stands in
    # for the download; the check is that the gray adaptation computes what the RGB network computes.
    torch.manual_seed(0)
    reference = torchvision.models.resnet18().eval()
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    summed = create_model("resnet18", weights_path=str(path), channels="sum", stem="imagenet").eval()
    repeated = create_model("resnet18", weights_path=str(path), channels="repeat", stem="imagenet").eval()
    for m in (summed, repeated):
        m.fc = reference.fc
    gray = torch.rand(2, 1, 48, 48)
    rgb = torch.nn.functional.interpolate(gray, size=224, mode="bilinear", align_corners=False).expand(-1, 3, -1, -1)
    with torch.no_grad():
        expected = reference(rgb)
        assert torch.allclose(summed(gray), expected, atol=1e-4)
        assert torch.allclose(repeated(gray), expected, atol=1e-4)
    small = create_model("resnet18", weights_path=str(path), stem="small")
    assert torch.equal(small.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)


def test_checkpoint_of_a_pretrained_model_loads_offline(tmp_path, monkeypatch):
    torch.manual_seed(0)
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    model = create_model("resnet18", weights_path=str(path))
    cfg = RunConfig()
    cfg.model.name, cfg.model.kwargs = "resnet18", {"pretrained": True, "weights_path": str(path)}
    save_checkpoint(tmp_path, "best.pt", checkpoint_payload(model, cfg.to_dict(), tuple("abcdefg"), Preprocessing(), 1, {}))
    path.unlink()  # the weights file is gone and there is no internet: the checkpoint alone must do
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    rebuilt = model_from_checkpoint(load_checkpoint(tmp_path / "best.pt"))
    assert torch.equal(rebuilt.conv1.weight, model.conv1.weight)


def test_a_weights_file_is_checked_before_it_is_used(tmp_path):
    from fer.models.pretrained import check_pretrained, published_name

    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    good = tmp_path / "my-resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), good)
    check_pretrained("resnet18", {"weights_path": str(good)})  # torchvision's names and shapes: accepted
    with pytest.raises(PretrainedWeightsError, match="does not hold the weights of resnet34-b627a593.pth: 96 tensors"):
        check_pretrained("resnet34", {"weights_path": str(good)})  # ResNet-18 weights for a ResNet-34
    damaged = tmp_path / published_name(weights)  # torchvision's own name, but not its published bytes
    damaged.write_bytes(good.read_bytes())
    with pytest.raises(PretrainedWeightsError, match="SHA-256 does not start with"):
        check_pretrained("resnet18", {"weights_path": str(damaged)})
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(PretrainedWeightsError, match="not a PyTorch weights file"):
        create_model("resnet18", weights_path=str(junk))
    expected = "has no ImageNet weights; models that do: convnext_tiny, efficientnet_b0, resnet18, resnet34"
    with pytest.raises(PretrainedWeightsError, match=expected):
        check_pretrained("plain_cnn", {"pretrained": True})
    check_pretrained("resnet18", {"pretrained": False})  # nothing asked for: nothing fetched


def test_a_run_that_cannot_get_its_weights_stops_before_its_folder_exists(small_folder, tmp_path, monkeypatch):
    from fer.cli.main import main

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-cache"))  # and no internet in tests
    runs = tmp_path / "runs"
    code = main(["train", "--set", f"data.path={small_folder}", "--set", f"runs_dir={runs}", "--set",
                 "model.name=resnet18", "--set", "model.kwargs={pretrained: true}", "--set", "data.limit=20"])
    assert code != 0
    assert not runs.exists() or not any(runs.iterdir())
    code = main(["train", "--set", f"data.path={small_folder}", "--set", f"runs_dir={runs}", "--set",
                 "model.name=resnet18", "--set", f"model.kwargs.weights_path={tmp_path / 'missing.pth'}"])
    assert code != 0 and (not runs.exists() or not any(runs.iterdir()))


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["efficientnet_b0", "convnext_tiny"])
def test_the_stronger_backbones_take_imagenet_weights_from_one_file(arch, tmp_path):
    # Study A's named next step. Random ImageNet-shaped weights stand in for the download (no internet).
    torch.manual_seed(0)
    reference = torchvision.models.get_model(arch, weights=None).eval()
    path = tmp_path / f"{arch}-imagenet.pth"
    torch.save(reference.state_dict(), path)
    model = create_model(arch, num_classes=7, weights_path=str(path)).eval()
    assert torch.equal(model.features[0][0].weight, reference.features[0][0].weight)  # the stem, as published
    gray = torch.rand(2, 1, 48, 48)
    rgb = torch.nn.functional.interpolate(gray.expand(-1, 3, -1, -1), size=(224, 224), mode="bilinear")
    with torch.no_grad():  # everything before the new 7-class layer computes what torchvision's network does
        ours = model.avgpool(model.features(rgb))
        theirs = reference.avgpool(reference.features(rgb))
        assert torch.allclose(ours, theirs) and model(gray).shape == (2, 7)
    with pytest.raises(PretrainedWeightsError, match="does not hold the weights"):
        create_model("resnet18", weights_path=str(path))  # another network's file is refused, not half-loaded
