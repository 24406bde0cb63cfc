"""Learning-rate schedules: warmup, then cosine / linear to min_lr, or constant."""

import pytest

from japanese_ft.train.schedule import ScheduleConfig, build_scheduler, lr_at


@pytest.mark.parametrize("kind", ["cosine", "linear", "constant"])
def test_schedule_shapes(kind):
    c = ScheduleConfig(lr=1e-3, min_lr=1e-4, warmup_steps=10, max_steps=110, schedule=kind)
    lrs = [lr_at(s, c) for s in range(110)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)  # linear warmup
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:10]))
    if kind == "constant":
        assert all(l == pytest.approx(1e-3) for l in lrs[10:])
    else:
        assert lrs[10] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-4)
        assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
        mid = lrs[60]
        assert mid == pytest.approx(5.5e-4, rel=0.02)  # half way: both shapes sit at the midpoint


def test_no_warmup_and_scheduler_matches_function():
    import torch

    c = ScheduleConfig(lr=2e-4, min_lr=0.0, warmup_steps=0, max_steps=5, schedule="cosine")
    assert lr_at(0, c) == pytest.approx(2e-4) and lr_at(4, c) == pytest.approx(0.0)
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=c.lr)
    sched = build_scheduler(opt, c)
    seen = []
    for _ in range(5):
        seen.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert seen == pytest.approx([lr_at(s, c) for s in range(5)])
