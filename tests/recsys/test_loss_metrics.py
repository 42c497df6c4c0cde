import math

import numpy as np
import pytest
import torch

from recsys.metrics import list_metrics, ranking_metrics
from recsys.model import sampled_softmax_loss


def test_log_q_sampled_softmax_by_hand() -> None:
    # 2 users, 2 in-batch positives, 1 uniform negative; 1-d vectors keep the arithmetic visible.
    u = torch.tensor([[1.0], [0.5]])
    v_pos = torch.tensor([[1.0], [-1.0]])
    v_neg = torch.tensor([[0.2]])
    log_q_pos, log_q_neg = torch.tensor([0.1, 0.3]), torch.tensor([0.2])
    T = 0.5
    loss = sampled_softmax_loss(u, v_pos, torch.tensor([7, 8]), log_q_pos, v_neg, torch.tensor([9]), log_q_neg, T)
    # row 0 logits: [1/T - .1, -1/T - .3, .2/T - .2] = [1.9, -2.3, 0.2], target 0
    # row 1 logits: [.5/T - .1, -.5/T - .3, .1/T - .2] = [0.9, -1.3, 0.0], target 1
    r0 = -1.9 + math.log(math.exp(1.9) + math.exp(-2.3) + math.exp(0.2))
    r1 = 1.3 + math.log(math.exp(0.9) + math.exp(-1.3) + math.exp(0.0))
    assert loss.item() == pytest.approx((r0 + r1) / 2, rel=1e-5)


def test_accidental_hits_are_masked() -> None:
    u = torch.tensor([[1.0], [1.0]])
    v = torch.tensor([[1.0], [1.0]])
    zeros2, zeros1 = torch.zeros(2), torch.zeros(1)
    # both rows have the same positive item 5 and the negative is item 5 too: only the diagonal stays
    loss = sampled_softmax_loss(u, v, torch.tensor([5, 5]), zeros2, torch.tensor([[1.0]]), torch.tensor([5]),
                                zeros1, 1.0)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_ranking_metrics_by_hand() -> None:
    topk = np.array([[3, 1, 2], [0, 4, 5]])
    relevant = [{1, 9}, {7}]
    m = ranking_metrics(topk, relevant, ks=(2,))
    # user 0: hit at rank 2 of 2 relevant; user 1: no hit
    assert m["recall@2"] == pytest.approx((1 / 2 + 0) / 2)
    ndcg0 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert m["ndcg@2"] == pytest.approx(ndcg0 / 2)
    assert m["mrr@2"] == pytest.approx((1 / 2) / 2)
    assert m["hit@2"] == pytest.approx(0.5)


def test_users_without_relevant_items_are_skipped() -> None:
    m = ranking_metrics(np.array([[1, 2], [3, 4]]), [{1}, set()], ks=(1,))
    assert m["recall@1"] == 1.0 and m["ndcg@1"] == 1.0


def test_list_metrics_by_hand() -> None:
    topk = np.array([[0, 1], [0, 1]])
    pop = np.array([3.0, 1.0, 0.0, 0.0])
    m = list_metrics(topk, 4, pop)
    assert m["coverage"] == 0.5
    assert m["novelty"] == pytest.approx((-math.log2(0.75) - math.log2(0.25)) / 2)
    # counts sorted [0, 0, 2, 2], coefficients 2i - n - 1 = (-3, -1, 1, 3): (1*2 + 3*2) / (4 * 4) = 0.5
    assert m["gini"] == pytest.approx(0.5)
