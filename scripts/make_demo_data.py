"""Regenerates feedback/demo/generations.jsonl: SmolLM2-135M-Instruct answers to the demo prompts under two
sampling settings. Run by hand (about three minutes on two cores); the output is committed so that a fresh
install has real model text without running a model.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/make_demo_data.py
"""

import json
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training.ml.smollm2 import convert_smollm2  # noqa: E402

SETTINGS = {
    "smollm2-135m-instruct@t0.2": {"temperature": 0.2, "top_p": 0.9, "max_new_tokens": 160, "seed": 1},
    "smollm2-135m-instruct@t1.0": {"temperature": 1.0, "top_p": 0.95, "max_new_tokens": 160, "seed": 2},
}


def main() -> None:
    model_dir = convert_smollm2(ROOT / "var" / "models" / "smollm2-135m-instruct")
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    rows = [json.loads(line) for line in (ROOT / "feedback/demo/prompts.jsonl").read_text().splitlines()]
    outputs: dict[int, list[dict]] = {i: [] for i in range(len(rows))}
    for name, s in SETTINGS.items():
        torch.manual_seed(s["seed"])
        for start in range(0, len(rows), 8):
            batch = rows[start : start + 8]
            texts = [tok.apply_chat_template(r["messages"], tokenize=False, add_generation_prompt=True) for r in batch]
            enc = tok(texts, return_tensors="pt", padding=True)
            with torch.no_grad():
                out = model.generate(
                    **enc,
                    do_sample=True,
                    temperature=s["temperature"],
                    top_p=s["top_p"],
                    max_new_tokens=s["max_new_tokens"],
                    pad_token_id=tok.pad_token_id,
                )
            for j, seq in enumerate(out):
                text = tok.decode(seq[enc["input_ids"].shape[1] :], skip_special_tokens=True).strip()
                outputs[start + j].append({"model": name, "response": text, "generation": s})
            print(name, start, file=sys.stderr)
    with open(ROOT / "feedback/demo/generations.jsonl", "w") as f:
        for i, r in enumerate(rows):
            f.write(json.dumps({**r, "responses": outputs[i]}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
