import pytest
import torch

from core.stats import accuracy
from core.targets import one_hot, smooth_targets, soft_target_cross_entropy


def test_one_hot_rows_sum_to_one_and_mark_the_label():
    labels = torch.tensor([0, 3, 9, 3])
    targets = one_hot(labels, num_classes=10)
    assert targets.shape == (4, 10) and targets.dtype == torch.float32
    assert torch.equal(targets.sum(dim=1), torch.ones(4))
    assert torch.equal(targets.argmax(dim=1), labels)


@pytest.mark.parametrize("smoothing", [0.0, 0.05, 0.1, 0.3])
def test_smoothed_rows_keep_unit_mass(smoothing):
    targets = smooth_targets(one_hot(torch.tensor([1, 7]), num_classes=10), smoothing)
    assert targets.sum(dim=1).tolist() == pytest.approx([1.0, 1.0])
    assert targets[0, 1].item() == pytest.approx(1 - smoothing + smoothing / 10)
    assert targets[0, 0].item() == pytest.approx(smoothing / 10)


@pytest.mark.parametrize("smoothing", [0.0, 0.05, 0.1, 0.3])
def test_soft_target_loss_equals_torch_label_smoothing(smoothing):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(32, 10, generator=generator) * 3
    labels = torch.randint(0, 10, (32,), generator=generator)
    ours = soft_target_cross_entropy(logits, smooth_targets(one_hot(labels), smoothing))
    reference = torch.nn.CrossEntropyLoss(label_smoothing=smoothing)(logits, labels)
    assert ours.ndim == 0
    assert ours.item() == pytest.approx(reference.item(), abs=1e-6)


def test_soft_target_loss_backpropagates_softmax_minus_targets():
    logits = torch.randn(4, 10, requires_grad=True)
    targets = smooth_targets(one_hot(torch.tensor([0, 1, 2, 3])), 0.1)
    soft_target_cross_entropy(logits, targets).backward()
    expected = (logits.detach().softmax(dim=-1) - targets) / 4
    torch.testing.assert_close(logits.grad, expected)


def test_accuracy_on_labels_one_hot_and_smoothed_targets():
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    labels = torch.tensor([0, 1, 0, 0])
    assert accuracy(scores, labels) == pytest.approx(0.75)
    assert accuracy(scores, one_hot(labels, num_classes=3)) == pytest.approx(0.75)
    assert accuracy(scores, smooth_targets(one_hot(labels, num_classes=3), 0.3)) == pytest.approx(0.75)
    assert isinstance(accuracy(scores, labels), float)
