"""A CPU arena in which REAL and its baselines train a tiny model on a verifiable arithmetic task.

The modules, in the order a run uses them:

* `task`: arithmetic problems of mixed difficulty whose reference answer goes in `\\boxed{}`, with a
  fixed held-out split (`build_splits`);
* `settings`: `ArenaConfig` (everything a run depends on) and the six methods compared (`METHODS`);
* `heldout`: held-out greedy accuracy and sampled Pass@1, scored by the project's math reward;
* `sft`: the supervised warm start of a tiny Qwen2 (`real_trl.tiny`), cached on disk, which gives
  the policy some arithmetic and two habits the verifier rejects;
* `runs`: RL with `REALTrainer` for each loss type under the same budget (`run_method`, `run_arena`);
* `report`: the summary over seeds, a markdown table, a JSON file with every curve and a PNG figure.

Nothing is tuned per method: every loss type gets the same prompts, group size, steps and
learning-rate sweep. `task` and `settings` import no torch, so scripts parse their arguments fast.
"""
