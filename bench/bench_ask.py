"""`ask` on the test corpus's paraphrased questions: how often the answer's citations
check out against the cited chunks, and how often `ask` falls back to the passages.

    python bench/bench_ask.py [--model NAME] [--k 3] [--max-tokens 160]

The questions are tests/test_rag_index.py's (the issue's hidden questions are not in
the repository). The answering model is whatever `ask` picks on this machine (a local
server's model, a pulled GGUF larger than the bundled one, else the bundled 135M model),
unless --model names one. Prints markdown.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from tests.support.rag import QUESTIONS  # noqa: E402

from bench_embeddings import cpu_model  # noqa: E402
from localinfer.client import Client  # noqa: E402
from localinfer.rag import Index  # noqa: E402
from localinfer.rag.answer_model import answering_settings  # noqa: E402
from localinfer.settings import Settings  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=160)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-ask-"))
    try:
        settings = Settings(index_path=work / "ask.db")
        rows, verified, extractive, right, right_cited, times = [], 0, 0, 0, 0, []
        models: set[str] = set()
        # One client for every question, chosen as `ask` chooses its own (a larger pulled
        # GGUF when there is one), so the engine loads once.
        with Index(settings) as index, \
                Client(answering_settings(settings, args.model)[0]) as client:
            index.add([ROOT / "tests" / "corpus"])
            for question, name, phrase in QUESTIONS:
                started = time.perf_counter()
                answer = index.ask(question, k=args.k, model=args.model, client=client,
                                   max_tokens=args.max_tokens)
                times.append(time.perf_counter() - started)
                models.add(f"{answer.model} ({answer.backend}, {answer.tier})")
                top = answer.sources[0].chunk
                found = top.path.endswith("/" + name) and phrase in top.text
                cited = any(answer.sources[n - 1].chunk.path.endswith("/" + name)
                            and phrase in answer.sources[n - 1].chunk.text
                            for n in answer.cited)
                verified += answer.verified
                extractive += answer.extractive
                right += found
                right_cited += cited
                kind = "extractive" if answer.extractive else (
                    f"verified ({len(answer.claims)} kept, {len(answer.unverified)} dropped)")
                said = " ".join(answer.model_answer.split())[:70].replace("|", "/")
                rows.append(f"| {question} | {'yes' if found else 'no'} | {kind} | "
                            f"{'yes' if cited else 'no'} | {said} |")
        n = len(QUESTIONS)
        print("## ask: checked citations on the test questions\n")
        print(f"- command: `python bench/bench_ask.py --k {args.k} --max-tokens "
              f"{args.max_tokens}{' --model ' + args.model if args.model else ''}`")
        print(f"- machine: {cpu_model()}, {os.cpu_count()} cores, Python "
              f"{platform.python_version()}; load average at the end "
              f"{os.getloadavg()[0]:.1f}")
        print(f"- answered by: {', '.join(sorted(models))}; median {np.median(times):.1f} s "
              "a question\n")
        print(f"| {n} questions | share |\n|---|---:|")
        print(f"| answers whose every kept sentence has a verified citation | "
              f"{verified / n:.0%} ({verified}) |")
        print(f"| extractive (the model cited nothing checkable: passages shown) | "
              f"{extractive / n:.0%} ({extractive}) |")
        print(f"| right chunk ranked first by retrieval | {right / n:.0%} ({right}) |")
        print(f"| right chunk among the answer's citations | "
              f"{right_cited / n:.0%} ({right_cited}) |\n")
        print("| question | right chunk first | answer | right chunk cited | model said |")
        print("|---|---|---|---|---|")
        print("\n".join(rows))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
