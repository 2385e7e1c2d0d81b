"""scripts/train.py with TRL's weight sync to vLLM switched off: the control run of tests/test_vllm.py, which must
see vLLM drift away from the trainer. Same command line as scripts/train.py."""

from trl.generation.vllm_generation import VLLMGeneration

from real_trl.launch import main

if __name__ == "__main__":  # vLLM may start processes of its own
    VLLMGeneration.sync_weights = lambda self: None
    main()
