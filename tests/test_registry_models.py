"""The registry type, and every registered model (parametrised over the registry, as in timm)."""
import pytest
import torch

from fer.config import AugmentConfig
from fer.core.registry import Registry
from fer.data.augment import AUGMENTATIONS, build_augmentation
from fer.models import MODELS, count_parameters, create_model


def test_registry_register_get_and_errors():
    reg = Registry("widget")

    @reg.register(colour="red")
    def alpha():
        return "a"

    @reg.register("beta")
    def other():
        return "b"

    assert reg.names() == ["alpha", "beta"] and len(reg) == 2 and "alpha" in reg
    assert reg.get("beta")() == "b" and reg.info("alpha") == {"colour": "red"}
    with pytest.raises(KeyError, match="unknown widget 'gamma'; choose from: alpha, beta"):
        reg.get("gamma")
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("alpha")(lambda: None)


def test_every_registered_model_is_importable_by_name_and_declares_its_layers():
    # The registry is filled by importing the model files: each family's builders are there, and each
    # builds a module whose declared Grad-CAM layer and transfer head exist in it.
    families = {"plain_cnn", "baseline_cnn", "gap_cnn", "vgg_fer", "cbam_cnn", "deep_emotion", "mini_xception",
                "resnet18", "resnet34", "study_e_baseline_v1", "study_e_baseline_v2", "study_e_deeper_v1",
                "study_e_deeper_v2", "study_e_cbam", "efficientnet_b0", "convnext_tiny", "ensemble"}
    assert set(MODELS.names()) == families
    for name in MODELS.names():
        model = create_model(name, num_classes=7, in_chans=1)
        assert model.get_submodule(model.cam_layer) is not None and model.get_submodule(model.head_name) is not None


@pytest.mark.parametrize("name", MODELS.names())
def test_model_forward_backward(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, in_chans=1)
    x = torch.randn(4, 1, 48, 48)
    out = model(x)
    assert out.shape == (4, 7)
    assert torch.isfinite(out).all()
    out.logsumexp(1).mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    n_params = count_parameters(model)
    assert n_params > 10_000
    print(f"{name}: {n_params:,} parameters")


@pytest.mark.parametrize("name", MODELS.names())
def test_model_declares_cam_layer_with_spatial_output(name):
    model = create_model(name).eval()
    layer = model.get_submodule(model.cam_layer)
    seen = {}

    def record(module, inputs, output):  # must return None, or it would replace the output
        seen["shape"] = output.shape

    handle = layer.register_forward_hook(record)
    try:
        model(torch.zeros(1, 1, 48, 48))
    finally:
        handle.remove()
    assert len(seen["shape"]) == 4 and seen["shape"][-1] >= 3  # a spatial map Grad-CAM can use


@pytest.mark.parametrize("name", MODELS.names())
def test_model_declares_its_classifier_head(name):
    model = create_model(name, num_classes=5).eval()
    head = model.get_submodule(model.head_name)
    outputs = []
    handle = head.register_forward_hook(lambda module, inputs, output: outputs.append(output.shape))
    try:
        logits = model(torch.zeros(2, 1, 48, 48))
    finally:
        handle.remove()
    assert outputs == [logits.shape] == [(2, 5)]  # the head is what produces the class scores
    assert 0 < sum(p.numel() for p in head.parameters()) < sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", MODELS.names())
def test_model_three_channel_variant(name):
    assert create_model(name, num_classes=5, in_chans=3)(torch.randn(2, 3, 48, 48)).shape == (2, 5)


@pytest.mark.parametrize("name", AUGMENTATIONS.names())
def test_augmentation_presets_keep_uint8_shape(name):
    torch.manual_seed(0)
    x = torch.randint(0, 256, (1, 48, 48), dtype=torch.uint8)
    # 'custom' is built from aug.* settings (none by default): give it some, as a study config would.
    aug = build_augmentation(name, 48, AugmentConfig(crop="resized", flip=True, rotation=10.0, erasing=0.5))
    y = x if aug is None else aug(x)
    assert y.dtype == torch.uint8 and y.shape == (1, 48, 48)
    if name != "none":
        torch.manual_seed(1)
        assert any(not torch.equal(aug(x), x) for _ in range(5))
