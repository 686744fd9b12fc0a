import json

import pytest
import timm
import torch
import torch.nn.functional as F

from core.augment import normalize
from core.config import Config
from core.models import FAMILIES as FAMILY_TABLE
from core.models import (PadTo, PretrainedWeightsError, ResizeTo, count_parameters, create_model, create_model_from_spec,
                         describe_pretrained, family_of, is_convolutional, model_spec, resolve_pretrained,
                         training_recipe)

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


# ---------------------------------------------------------------------------- recipes, input size, pretrained path

TIMM_FAMILIES = [  # one model per timm family of FAMILIES
    "efficientnet_b0", "tf_efficientnet_b0", "convnext_atto", "edgenext_xx_small", "tiny_vit_5m_224",
    "vit_tiny_patch16_224", "eva02_tiny_patch14_224"]


def test_every_family_of_the_table_is_tested_here():
    covered = {family_of(name).prefix for name in TIMM_FAMILIES} | {"smallcnn", "fastcnn"}
    assert covered == {family.prefix for family in FAMILY_TABLE}


@pytest.mark.parametrize("name", TIMM_FAMILIES)
def test_each_family_builds_at_28_px_its_recipes_input_size_and_56(name):
    for side in sorted({28, training_recipe(name)["input_size"], 56}):
        spec = model_spec(name, input_size=side, drop_path_rate=training_recipe(name)["drop_path_rate"])
        model = create_model_from_spec(json.loads(json.dumps(spec))).eval()
        assert spec["input_size"] == side
        if side != 28:  # resized inside the model: its weights sit under "model."
            assert isinstance(model.resize, ResizeTo) and model.resize.size == side
            assert all(key.startswith("model.") for key in model.state_dict())
        images = torch.randn(2, 1, 28, 28)
        logits = model(images)
        assert logits.shape == (2, 10) and torch.isfinite(logits).all()
        rebuilt = create_model_from_spec(json.loads(json.dumps(spec))).eval()
        rebuilt.load_state_dict(model.state_dict(), strict=True)
        torch.testing.assert_close(rebuilt(images), logits)


def test_resize_is_bilinear_on_the_device_and_a_no_op_at_its_size():
    images = torch.rand(3, 1, 28, 28)
    resized = ResizeTo(56)(images)
    torch.testing.assert_close(resized, F.interpolate(images, size=(56, 56), mode="bilinear", align_corners=False))
    assert ResizeTo(28)(images) is images
    assert "resize" not in dict(create_model("convnext_atto").named_children())  # 28 px: only padded to 32
    assert model_spec("convnext_atto", input_size=64)["pad_to"] is None  # 64 px needs no padding


@pytest.mark.parametrize("side, windows", [(28, [7, 4, 2, 1]), (56, [7, 7, 4, 2]), (64, [4, 4, 4, 2]),
                                           (224, [7, 7, 14, 7])])
def test_tiny_vit_windows_tile_its_feature_maps(side, windows):
    assert model_spec("tiny_vit_5m_224", input_size=side)["timm_kwargs"]["window_sizes"] == windows
    maps = [-(-side // 4), -(-side // 8), -(-side // 16), -(-side // 32)]
    assert all(m % w == 0 for m, w in zip(maps, windows))


@pytest.mark.parametrize("name, kwargs, fragment", [
    ("vit_tiny_patch16_224", {"input_size": 30}, "multiple of 7"),
    ("convnext_atto", {"input_size": 20}, "use 28"),
    ("convnext_atto", {"input_size": 1000}, "up to 448"),
    ("smallcnn", {"drop_path_rate": 0.1}, "no residual branches"),
    ("tiny_vit_5m_224", {"input_size": 88}, "input_size = 88: tiny_vit's 11-px feature map of stage 1"),
])
def test_sizes_and_drop_path_a_model_cannot_take_are_refused(name, kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        model_spec(name, **kwargs)


def test_drop_path_reaches_the_timm_model():
    spec = model_spec("convnext_atto", drop_path_rate=0.1)
    assert spec["timm_kwargs"]["drop_path_rate"] == 0.1
    rates = [m.drop_prob for m in create_model_from_spec(spec).modules() if type(m).__name__ == "DropPath"]
    assert rates and max(rates) == pytest.approx(0.1)
    assert "drop_path_rate" not in model_spec("convnext_atto")["timm_kwargs"]  # 0: the spec of earlier runs


def test_efficientnets_first_loss_is_near_chance_after_its_head_is_reset():
    torch.manual_seed(0)
    images, labels = normalize(torch.rand(64, 1, 28, 28)), torch.arange(64) % 10
    loss = F.cross_entropy(create_model("efficientnet_b0", input_size=56).train()(images), labels)
    assert loss.item() < 3.0  # ln 10 = 2.30; timm's own head init starts near 4.5 at 10 classes


def _timm_checkpoint(name: str, path) -> dict:
    """What timm would download for ``name``: its architecture at timm's defaults (3 channels, 1000 classes, the
    default image size), made here with random weights and saved like a hub file."""
    torch.manual_seed(1)
    state = timm.create_model(name, pretrained=False).state_dict()
    torch.save(state, path)
    return state


@pytest.mark.parametrize("name", TIMM_FAMILIES)
def test_pretrained_weights_load_at_the_recipes_shapes_without_a_download(name, tmp_path, monkeypatch):
    """timm's own loading path (load_pretrained → checkpoint_filter_fn → in_chans adaptation → a new 10-class head)
    from a local file: position embeddings resampled for vit/eva at the new img_size and patch size, tiny_vit's
    attention biases for its windows, the RGB stem summed to one channel."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing may be fetched
    source = _timm_checkpoint(name, tmp_path / "weights.pth")
    config = Config(model=name)
    model = create_model_from_spec(config.model_spec(), pretrained=True, pretrained_file=str(tmp_path / "weights.pth"))
    network = model.model if isinstance(model, torch.nn.Sequential) else model
    loaded = network.state_dict()
    stem = next(key for key, value in loaded.items() if value.ndim == 4)  # the first conv: 1 input channel now
    assert loaded[stem].shape[1] == 1 and source[stem].shape[1] == 3
    same = [key for key, value in loaded.items()
            if key in source and value.shape == source[key].shape and value.dtype.is_floating_point
            and value.ndim >= 2 and key != stem]
    assert len(same) > 10 and all(torch.equal(loaded[key], source[key]) for key in same)  # the body is timm's
    head = network.get_classifier()
    assert head.out_features == 10
    if name.startswith(("vit_", "eva02")):
        assert loaded["pos_embed"].shape[1] == (config.input_size // 7) ** 2 + 1 != source["pos_embed"].shape[1]
    model.eval()
    logits = model(torch.randn(2, 1, 28, 28))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
