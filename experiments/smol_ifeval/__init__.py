"""experiments/smol_ifeval: DPO vs RPO vs IOPO from SmolLM2-135M-Instruct, scored on the real IFEval
prompts."""
