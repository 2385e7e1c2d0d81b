"""The training sampler: TRL's, made to resume exactly."""

from __future__ import annotations

import torch
from trl.trainer.utils import RepeatSampler


class ResumableRepeatSampler(RepeatSampler):
    """TRL's RepeatSampler whose shuffle in epoch e is the one an uninterrupted run draws in epoch e.

    RepeatSampler draws every epoch's order from one generator seeded once, so a trainer resumed in
    epoch e > 0 would replay epoch 0's order. Here each pass rewinds the generator to the seed and
    draws the e earlier orders first, with e read from the trainer's state when the pass starts.
    """

    def __init__(self, *args, current_epoch, **kwargs):
        super().__init__(*args, **kwargs)
        self.current_epoch = current_epoch

    def __iter__(self):
        if self.shuffle and self.seed is not None:
            self.generator.manual_seed(self.seed)
            for _ in range(self.current_epoch()):
                torch.randperm(self.num_samples, generator=self.generator)
        return super().__iter__()
