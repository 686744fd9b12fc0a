import json

import pytest
import torch

from core.augment import normalize
from core.models import (PadTo, PretrainedWeightsError, count_parameters, create_model, create_model_from_spec,
                         describe_pretrained, is_convolutional, model_spec, resolve_pretrained)

FAMILIES = [
    "smallcnn",
    "efficientnet_b0",
    "tf_efficientnet_b0.ns_jft_in1k",
    "convnext_atto.d2_in1k",
    "edgenext_xx_small",
    "tiny_vit_5m_224",
    "vit_tiny_patch16_224",
    "eva02_tiny_patch14_224",
]
CONVOLUTIONAL = {"smallcnn", "efficientnet_b0", "tf_efficientnet_b0.ns_jft_in1k", "convnext_atto.d2_in1k",
                 "edgenext_xx_small"}


@pytest.fixture(autouse=True)
def _one_thread():  # tiny batches: extra threads only spin, and much more so on a busy machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", FAMILIES)
def test_one_training_step_on_28px_digits(name):
    torch.manual_seed(0)
    model = create_model(name, pretrained=False).train()
    images, labels = torch.randn(4, 1, 28, 28), torch.tensor([0, 3, 7, 9])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    before = [p.detach().clone() for p in model.parameters()]

    logits = model(images)
    loss = torch.nn.functional.cross_entropy(logits, labels)
    loss.backward()
    optimizer.step()

    assert logits.shape == (4, 10)
    assert torch.isfinite(loss)
    params = list(model.parameters())
    for p in (params[0], params[-1]):  # the stem and the classifier both learn
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    assert sum(not torch.equal(b, p) for b, p in zip(before, params)) > len(params) // 2


@pytest.mark.parametrize("name", FAMILIES)
def test_spec_survives_json_and_rebuilds_the_same_architecture(name):
    spec = model_spec(name)
    assert json.loads(json.dumps(spec)) == spec
    assert spec["name"] == name and spec["input_size"] == 28 and spec["convolutional"] == (name in CONVOLUTIONAL)
    trained = create_model(name)
    rebuilt = create_model_from_spec(json.loads(json.dumps(spec)), pretrained=False)
    rebuilt.load_state_dict(trained.state_dict(), strict=True)
    images = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(rebuilt.eval()(images), trained.eval()(images))


@pytest.mark.parametrize("name", FAMILIES)
def test_is_convolutional(name):
    assert is_convolutional(name) == (name in CONVOLUTIONAL)


def test_smallcnn_is_small():
    assert 200_000 <= count_parameters(create_model("smallcnn")) <= 500_000


def test_padding_adds_the_normalised_black_background():
    model = create_model("convnext_atto")
    assert model.pad.value == pytest.approx(normalize(torch.zeros(1)).item())
    assert model_spec("convnext_atto")["pad_value"] == pytest.approx(model.pad.value)
    padded = model.pad(normalize(torch.zeros(1, 1, 28, 28)))
    torch.testing.assert_close(padded, normalize(torch.zeros(1, 1, 32, 32)))


def test_other_channel_and_class_counts():
    model = create_model("convnext_atto", in_chans=3, num_classes=5).eval()
    assert model(torch.randn(2, 3, 28, 28)).shape == (2, 5)
    assert create_model("smallcnn", in_chans=3, num_classes=5).eval()(torch.randn(2, 3, 28, 28)).shape == (2, 5)


def test_timm_kwargs_override_the_family_defaults():
    spec = model_spec("vit_tiny_patch16_224", timm_kwargs={"patch_size": 7})
    assert spec["timm_kwargs"] == {"img_size": 28, "patch_size": 7}
    assert create_model_from_spec(spec).eval()(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_other_timm_names_pass_through():
    spec = model_spec("resnet18")
    assert spec["family"] is None and spec["timm_kwargs"] == {} and spec["pad_to"] is None
    assert create_model_from_spec(spec).eval()(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_unknown_name_suggests_how_to_search():
    with pytest.raises(ValueError, match=r"timm\.list_models\('\*efficientnet\*'\)"):
        create_model("efficientnet_b99")


def test_smallcnn_has_no_pretrained_weights():
    with pytest.raises(ValueError, match="pretrained"):
        create_model("smallcnn", pretrained=True)


@pytest.mark.parametrize("setting, kaggle, expected", [
    ("auto", True, True), ("auto", False, False), (True, False, True), (True, True, True), (False, True, False)])
def test_pretrained_auto_means_timm_weights_on_kaggle_only(setting, kaggle, expected):
    assert resolve_pretrained(setting, "efficientnet_b0", on_kaggle=kaggle) is expected
    assert resolve_pretrained(setting, "smallcnn", on_kaggle=kaggle) is False  # our own models have none
    line = describe_pretrained(setting, "smallcnn", on_kaggle=kaggle)
    assert line == "smallcnn: digitkit's own architecture, trained from scratch (it has no pretrained weights)"
    assert ("starting from timm's pretrained weights" in describe_pretrained(setting, "efficientnet_b0",
                                                                              on_kaggle=kaggle)) is expected


def test_a_failed_download_says_turn_internet_on_or_set_pretrained_false(monkeypatch):
    import timm

    real = timm.create_model

    def offline(name, pretrained=False, **kwargs):
        if pretrained:
            raise OSError("[Errno -2] Name or service not known")
        return real(name, pretrained=False, **kwargs)

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(PretrainedWeightsError, match=r"model = 'resnet18': its pretrained weights could not be "
                                                     r"downloaded \(OSError: \[Errno -2\].*turn the train kernel's "
                                                     r"internet on.*; or set pretrained = False"):
        create_model("resnet18", pretrained=True)


def test_a_model_that_cannot_be_built_is_not_blamed_on_the_network(monkeypatch):
    import timm

    def broken(name, pretrained=False, **kwargs):
        raise ValueError("in_chans adaptation failed")

    monkeypatch.setattr(timm, "create_model", broken)
    with pytest.raises(ValueError, match="in_chans adaptation failed"):
        create_model("resnet18", pretrained=True)


def test_non_json_kwargs_are_rejected():
    with pytest.raises(ValueError, match="JSON"):
        model_spec("convnext_atto", timm_kwargs={"act_layer": torch.nn.GELU})


@pytest.mark.parametrize("height, width, expected", [(28, 28, (32, 32)), (27, 30, (32, 32)), (40, 20, (40, 32))])
def test_pad_to_centres_the_image(height, width, expected):
    images = torch.ones(2, 1, height, width)
    padded = PadTo(32, value=0.0)(images)
    assert padded.shape[-2:] == expected
    assert padded.sum() == images.sum()
    if (height, width) == (28, 28):
        assert torch.equal(padded[..., 2:30, 2:30], images)
