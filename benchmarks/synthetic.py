"""Deterministic synthetic data for scale runs: career-guide-like text and clustered vectors.

Everything here depends only on the seed, so two runs (or two machines) measure the same data.
``python -m benchmarks.synthetic corpus OUT_DIR --docs 200`` writes a corpus folder.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROLES = [
    "Data Engineer", "Machine Learning Engineer", "Product Manager", "UX Designer",
    "Site Reliability Engineer", "Security Analyst", "Data Scientist", "Technical Writer",
    "Cloud Architect", "Frontend Developer", "Backend Developer", "QA Engineer",
    "DevOps Engineer", "Business Analyst", "Database Administrator", "Mobile Developer",
    "Research Scientist", "Solutions Architect", "Engineering Manager", "Data Analyst",
    "Fraud Analyst", "Bioinformatician", "Robotics Engineer", "Embedded Engineer",
]  # fmt: skip
SENIORITY = ["Junior", "Mid-level", "Senior", "Staff", "Principal", "Lead"]
INDUSTRIES = [
    "fintech", "healthcare", "retail", "logistics", "gaming", "energy", "insurance",
    "telecommunications", "government", "education", "media", "automotive", "biotech",
]  # fmt: skip
SKILLS = [
    "Python", "SQL", "Spark", "Kubernetes", "Terraform", "statistics", "A/B testing",
    "stakeholder management", "system design", "PyTorch", "data modelling", "Airflow",
    "Kafka", "React", "TypeScript", "Go", "Rust", "Java", "incident response", "threat modelling",
    "feature engineering", "dashboards", "technical writing", "user research", "prototyping",
    "monitoring", "CI/CD", "cost optimisation", "vector search", "experiment design",
]  # fmt: skip
VERBS = [
    "designs", "builds", "maintains", "reviews", "automates", "monitors", "documents",
    "optimises", "migrates", "tests", "plans", "prioritises", "scales", "secures",
]  # fmt: skip
OBJECTS = [
    "data pipelines", "training jobs", "dashboards", "APIs", "release processes", "on-call rotas",
    "model registries", "access policies", "product roadmaps", "test suites", "batch jobs",
    "streaming systems", "feature stores", "design systems", "cloud budgets", "runbooks",
]  # fmt: skip
SECTIONS = [
    "Overview", "Responsibilities", "Skills", "Salary", "Career Path", "Education",
    "Day in the Life", "Tools", "Interview Tips", "Job Outlook",
]  # fmt: skip


def _sentence(rng: random.Random, role: str, section: str) -> str:
    skill, skill2 = rng.sample(SKILLS, 2)
    industry = rng.choice(INDUSTRIES)
    level = rng.choice(SENIORITY)
    if section == "Salary":
        pay = rng.randrange(45, 260) * 1000
        return (
            f"A {level.lower()} {role.lower()} in {industry} earns about ${pay:,} a year, "
            f"more with {skill} experience."
        )
    if section == "Job Outlook":
        return (
            f"Demand for {role.lower()}s in {industry} is expected to grow "
            f"{rng.randrange(3, 40)}% over the next {rng.randrange(3, 11)} years."
        )
    if section == "Education":
        degree = rng.choice(["computer science", "statistics", "design", "mathematics", "physics"])
        return f"Most {role.lower()}s hold a degree in {degree}; a {skill} certificate helps."
    verb, obj = rng.choice(VERBS), rng.choice(OBJECTS)
    return rng.choice(
        [
            f"A {role.lower()} {verb} {obj} for {industry} teams using {skill} and {skill2}.",
            f"In {industry}, the {level.lower()} {role.lower()} {verb} {obj} every week.",
            f"Strong {skill} skills let a {role.lower()} move faster on {obj}.",
            f"Hiring managers in {industry} look for {skill}, {skill2} and clear communication.",
        ]
    )


def document(i: int, seed: int = 0, sections: int | None = None) -> str:
    """The i-th synthetic career guide, in Markdown (same text for the same i and seed).

    ``sections`` fixes how many sections it has (1-10) for smaller documents; by default 5-10.
    """
    rng = random.Random(seed * 1_000_003 + i)
    role = ROLES[i % len(ROLES)]
    title = f"{role} Career Guide #{i}"
    parts = [f"# {title}\n"]
    if sections is None:
        sections = rng.randrange(5, len(SECTIONS) + 1)
    elif not 1 <= sections <= len(SECTIONS):
        raise ValueError(f"sections must be between 1 and {len(SECTIONS)}")
    for section in rng.sample(SECTIONS, sections):
        parts.append(f"## {section}\n")
        for _ in range(rng.randrange(1, 4)):
            sentences = [_sentence(rng, role, section) for _ in range(rng.randrange(2, 6))]
            parts.append(" ".join(sentences) + "\n")
        if section in ("Skills", "Tools", "Responsibilities"):
            parts.extend(f"- {s}" for s in rng.sample(SKILLS, rng.randrange(3, 7)))
            parts.append("")
    return "\n".join(parts)


def write_corpus(out_dir: Path, docs: int, seed: int = 0, sections: int | None = None) -> Path:
    """Write ``docs`` synthetic guides as Markdown files into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for i in range(docs):
        text = document(i, seed, sections)
        (out_dir / f"guide-{i:06d}.md").write_text(text, encoding="utf-8")
    return out_dir


def passages(n: int, seed: int = 0) -> Iterator[str]:
    """``n`` passage-sized texts (about 50-80 words each), for BM25 at scale."""
    rng = random.Random(seed)
    for _ in range(n):
        role = rng.choice(ROLES)
        section = rng.choice(SECTIONS)
        yield f"{role} - {section}: " + " ".join(
            _sentence(rng, role, section) for _ in range(rng.randrange(3, 6))
        )


def queries(n: int, seed: int = 1) -> list[str]:
    """Short questions about the synthetic guides."""
    rng = random.Random(seed)
    forms = [
        "What does a {r} earn in {i}?",
        "Which skills does a {r} need?",
        "How do I become a {l} {r}?",
        "{s} jobs in {i}",
        "day in the life of a {r}",
    ]
    return [
        rng.choice(forms).format(
            r=rng.choice(ROLES).lower(),
            i=rng.choice(INDUSTRIES),
            l=rng.choice(SENIORITY).lower(),
            s=rng.choice(SKILLS),
        )
        for _ in range(n)
    ]


def clustered_vectors(
    n: int, dim: int = 384, *, clusters: int = 1000, spread: float = 1.0, seed: int = 0
) -> np.ndarray:
    """``n`` float32 unit vectors around ``clusters`` random centres.

    Real sentence embeddings are far from uniform on the sphere: they bunch by topic. Uniform
    random vectors would be the worst case for any ANN index (no structure to exploit), so these
    are drawn as centre + Gaussian noise (``spread`` = noise norm relative to the centre's),
    which gives each point a cosine of about 0.7 to its centre at the default spread.
    Generated in blocks so a million rows never need more than the output array.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, dim), dtype=np.float32)
    block = 65_536
    for start in range(0, n, block):
        m = min(block, n - start)
        owner = rng.integers(0, clusters, m)
        noise = rng.standard_normal((m, dim), dtype=np.float32) * (spread / np.sqrt(dim))
        v = centres[owner] + noise
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        out[start : start + m] = v
    return out


def query_vectors(
    n: int, dim: int = 384, *, clusters: int = 1000, spread: float = 1.0, seed: int = 0
) -> np.ndarray:
    """Fresh draws from the same distribution as ``clustered_vectors`` (not copies of rows)."""
    # Same centres (same seed for the centre draw), different noise.
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    other = np.random.default_rng(seed + 10_007)
    owner = other.integers(0, clusters, n)
    v = centres[owner] + other.standard_normal((n, dim), dtype=np.float32) * (spread / np.sqrt(dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def main() -> None:
    """Write a synthetic corpus folder."""
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    corpus = sub.add_parser("corpus", help="write N synthetic guides as Markdown")
    corpus.add_argument("out", type=Path)
    corpus.add_argument("--docs", type=int, default=200)
    corpus.add_argument("--seed", type=int, default=0)
    corpus.add_argument(
        "--sections", type=int, default=None, help="sections per guide (default: 5-10)"
    )
    args = parser.parse_args()
    write_corpus(args.out, args.docs, args.seed, args.sections)
    print(f"wrote {args.docs} guides to {args.out}")


if __name__ == "__main__":
    main()
