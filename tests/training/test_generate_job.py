"""Generation jobs end to end with a tiny random model: responses with provenance, comparisons, resume."""

import json
from pathlib import Path

import pytest

from feedback.candidates import Candidate, candidates_add, prompts_select, responses_best_rated
from feedback.models import Comparison, Response
from tests.factories import ProjectFactory, PromptFactory, ResponseFactory, make_label, make_pair
from tests.training.checkpoints import tiny_checkpoint
from training.configs import GenerateConfig
from training.jobs import job_claim, job_dir, job_submit
from training.kinds.generate import prepare_generate
from training.models import Job
from training.registry import model_register
from training.runner import Context, Stopped
from training.tasks import generate as generate_task
from training.worker import Worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def tiny(tmp_path):
    return model_register(name="tiny", source=str(tiny_checkpoint(tmp_path / "tiny")))


def run_one(job: Job) -> Job:
    Worker(name="inline").run(once=True)
    job.refresh_from_db()
    return job


def test_a_generation_job_stores_responses_with_provenance_and_pairs_across_variants(tiny):
    project = ProjectFactory(max_pairs_per_prompt=3)
    prompts = [PromptFactory(project=project) for _ in range(3)]
    config = {"models": ["tiny"], "prompts": "all", "n": 2, "temperatures": [0.7, 1.3], "max_new_tokens": 6,
              "batch_size": 4, "seed": 3}  # fmt: skip
    job = run_one(job_submit(kind="generate", project=project, config=config))
    assert job.status == "succeeded", job.error
    assert job.result["sequences"] == 12 and job.result["precision"] == "fp32"
    responses = Response.objects.filter(job=job)
    assert responses.count() == job.result["responses"] > 6  # identical samples are stored once
    first = responses.order_by("id").first()
    assert first.model == "tiny"
    assert first.generation["template"] == "zero_shot"
    assert first.generation["temperature"] in (0.7, 1.3) and first.generation["job"] == job.pk
    assert {"top_p", "max_new_tokens", "seed", "sample", "new_tokens", "precision"} <= first.generation.keys()
    for prompt in prompts:
        pairs = list(Comparison.objects.filter(prompt=prompt).order_by("id"))
        assert 1 <= len(pairs) <= 3
        temps = {pairs[0].response_a.generation["temperature"], pairs[0].response_b.generation["temperature"]}
        assert temps == {0.7, 1.3}, "the first pair of a prompt sets the two temperatures side by side"
    assert job.artifacts.get(name="generations").size_bytes > 0
    assert job.metrics.filter(name="tokens_per_s").count() == 4  # a point per batch: 2 temperatures × 6 sequences / 4


def test_a_base_model_and_its_adapter_answer_side_by_side(tiny, settings, tmp_path):
    from tests.training.checkpoints import tiny_adapter

    base_dir = settings.JUROR_DATA_DIR / tiny.path
    model_register(
        name="tiny-lora", source=str(tiny_adapter(base_dir, tmp_path / "lora")), kind="adapter", parent="tiny"
    )
    project = ProjectFactory(max_pairs_per_prompt=1)
    prompt = PromptFactory(project=project)
    config = {"models": ["tiny", "tiny-lora"], "prompts": "all", "n": 1, "temperatures": [0], "max_new_tokens": 8}
    job = run_one(job_submit(kind="generate", project=project, config=config))
    assert job.status == "succeeded", job.error
    by_model = {r.model: r for r in Response.objects.filter(job=job)}
    assert set(by_model) == {"tiny", "tiny-lora"}
    assert by_model["tiny-lora"].text != by_model["tiny"].text  # greedy both times: the adapter made the difference
    assert by_model["tiny-lora"].generation["adapter"] == "tiny-lora" and by_model["tiny"].generation["adapter"] is None
    pair = Comparison.objects.get(prompt=prompt)
    assert {pair.response_a.model, pair.response_b.model} == {"tiny", "tiny-lora"}


def test_a_ranking_project_gets_one_ranking_per_prompt(tiny):
    project = ProjectFactory(comparison_mode="ranking")
    PromptFactory(project=project)
    config = {"models": ["tiny"], "prompts": "all", "n": 4, "temperatures": [1.5], "max_new_tokens": 8}
    job = run_one(job_submit(kind="generate", project=project, config=config))
    ranking = Comparison.objects.get(project=project)
    assert ranking.kind == "ranking"
    assert ranking.ranking_items.count() == job.result["responses"] >= 3


def test_an_unknown_model_fails_at_once_with_the_registered_names(tiny):
    project = ProjectFactory()
    PromptFactory(project=project)
    job = run_one(job_submit(kind="generate", project=project, config={"models": ["nope"], "prompts": "all"}))
    assert (job.status, job.attempt) == ("failed", 1)
    assert job.error == "no registered model called 'nope'; registered: smollm2-135m-instruct, tiny"


def test_a_selection_without_prompts_fails_at_once():
    project = ProjectFactory()
    PromptFactory(project=project, metadata={"tags": ["math"]})
    config = {"prompts": "tagged", "tag": "poetry"}
    job = run_one(job_submit(kind="generate", project=project, config=config))
    assert job.status == "failed" and "no prompts to answer" in job.error


def test_few_shot_without_examples_or_rated_responses_fails_with_advice():
    project = ProjectFactory()
    PromptFactory(project=project)
    job = run_one(job_submit(kind="generate", project=project, config={"template": "few_shot", "prompts": "all"}))
    assert job.status == "failed" and "give some in the config's `examples`" in job.error


def _context(job: Job) -> Context:
    workdir = job_dir(job)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "inputs.json").write_text(json.dumps(prepare_generate(job, workdir)))
    spec = {"job_id": job.pk, "attempt": 1, "kind": "generate", "config": job.config, "inputs": str(workdir / "inputs.json"),
            "workdir": str(workdir), "data_dir": str(workdir.parent.parent)}  # fmt: skip
    return Context(spec, events=lambda event: None)


def _generations(job: Job) -> list[dict]:
    return [json.loads(line) for line in (job_dir(job) / "generations.jsonl").read_text().splitlines()]


def test_a_stopped_generation_resumes_from_its_batches_and_ends_as_if_it_never_stopped(tiny):
    project = ProjectFactory()
    for _ in range(3):
        PromptFactory(project=project)
    config = {"models": ["tiny"], "prompts": "all", "n": 2, "temperatures": [1.0], "max_new_tokens": 6, "batch_size": 2}
    straight = job_submit(kind="generate", project=project, config=config)
    generate_task.run(_context(straight))

    interrupted = job_submit(kind="generate", project=project, config=config)
    ctx = _context(interrupted)
    ctx.request_stop()  # as SIGTERM would: the task stops after its next checkpoint
    with pytest.raises(Stopped):
        generate_task.run(ctx)
    saved = sorted(p.name for p in ctx.checkpoint_dir.glob("*.jsonl"))
    assert saved == ["v00-b00000.jsonl"]
    result = generate_task.run(_context(interrupted))
    assert result["sequences"] == 6
    assert [r["text"] for r in _generations(interrupted)] == [r["text"] for r in _generations(straight)]


def test_few_shot_examples_come_from_the_best_rated_responses_and_never_from_the_prompt_itself():
    project = ProjectFactory()
    strong = make_pair(project)
    for _ in range(3):
        make_label(strong, choice="a")
    weak = make_pair(project)
    for choice in ("b", "b", "a"):
        make_label(weak, choice=choice)
    best = responses_best_rated(project=project, limit=3)
    assert [b["text"] for b in best] == [strong.response_a.text, weak.response_b.text]
    job = job_submit(kind="generate", project=project, config={"template": "few_shot", "k": 1, "prompts": "all"})
    ctx = _context(job)
    conversations = {item.prompt_id: item.messages for item in generate_task.conversations_for(ctx)}
    own = conversations[strong.prompt_id]
    assert [m["role"] for m in own] == ["user", "assistant", "user"]
    assert own[1]["content"] == weak.response_b.text  # not its own best answer
    other = conversations[weak.prompt_id]
    assert other[1]["content"] == strong.response_a.text


def test_cot_answers_are_stored_apart_from_their_reasoning():
    project = ProjectFactory()
    prompt = PromptFactory(project=project)
    out = type("Out", (), {"text": "Two apples plus two apples.\nThat makes four.\n\nAnswer: 4", "new_tokens": 12})
    item = generate_task.Sequence(prompt_id=prompt.pk, sample=0, messages=[], shots=0)
    row = generate_task._row(GenerateConfig(template="cot"), item, "m", 0.7, out)
    assert (row["reasoning"], row["text"]) == ("Two apples plus two apples.\nThat makes four.", "4")
    candidates = [Candidate(prompt_id=prompt.pk, text=row["text"], reasoning=row["reasoning"], model="m", variant="m")]
    candidates_add(project=project, job_id=None, candidates=candidates, comparisons="pairs")
    stored = Response.objects.get(prompt=prompt)
    assert (stored.text, stored.reasoning) == ("4", "Two apples plus two apples.\nThat makes four.")


def test_prompt_selection(settings):
    project = ProjectFactory()
    tagged = PromptFactory(project=project, metadata={"tags": ["math"]})
    labelled = make_pair(project)
    make_label(labelled)
    plain = PromptFactory(project=project, metadata={"tag": "math"})
    ids = lambda rows: [r["id"] for r in rows]  # noqa: E731
    assert ids(prompts_select(project=project, which="all")) == [tagged.pk, labelled.prompt_id, plain.pk]
    assert ids(prompts_select(project=project, which="unlabelled")) == [tagged.pk, plain.pk]
    assert ids(prompts_select(project=project, which="tagged", tag="math")) == [tagged.pk, plain.pk]
    sample = ids(prompts_select(project=project, which="sample", limit=2, seed=7))
    assert len(sample) == 2 and sample == ids(prompts_select(project=project, which="sample", limit=2, seed=7))


def test_a_response_generated_twice_is_stored_once_and_reused():
    project = ProjectFactory()
    prompt = PromptFactory(project=project)
    existing = ResponseFactory(prompt=prompt, model="m", text="same")
    made = candidates_add(
        project=project,
        job_id=None,
        candidates=[
            Candidate(prompt_id=prompt.pk, text="same", model="m", variant="m@0.7"),
            Candidate(prompt_id=prompt.pk, text="new", model="m", variant="m@1.0"),
        ],
        comparisons="pairs",
    )
    assert made == {"responses": 1, "comparisons": 1}
    pair = Comparison.objects.get(prompt=prompt)
    assert existing.pk in (pair.response_a_id, pair.response_b_id)


@pytest.mark.model
def test_smollm2_generates_through_a_job_in_fp32_and_4bit(smollm2_dir, settings):
    models = Path(settings.JUROR_DATA_DIR) / "models"
    models.mkdir(parents=True)
    (models / "smollm2-135m-instruct").symlink_to(smollm2_dir)  # converted once per session
    for precision in ("fp32", "nf4"):
        # A project each: a 4-bit answer word for word like the fp32 one would otherwise be stored once.
        project = ProjectFactory()
        PromptFactory(project=project, messages=[{"role": "user", "content": "What is the capital of France?"}])
        config = {"prompts": "all", "n": 1, "temperatures": [0], "max_new_tokens": 12, "precision": precision}
        job = run_one(job_submit(kind="generate", project=project, config=config))
        assert job.status == "succeeded", job.error
        response = Response.objects.get(job=job)
        assert "Paris" in response.text
        assert response.generation["precision"] == precision
    assert job_claim(worker="x") is None


def test_the_same_answer_at_two_temperatures_is_one_response_and_never_paired_with_itself():
    project = ProjectFactory()
    prompt = PromptFactory(project=project)
    candidates = [
        Candidate(prompt_id=prompt.pk, text="Paris.", model="m", variant="m@0"),
        Candidate(prompt_id=prompt.pk, text="Paris.", model="m", variant="m@0.1"),
        Candidate(prompt_id=prompt.pk, text="It is Paris.", model="m", variant="m@0.1"),
    ]
    assert candidates_add(project=project, job_id=None, candidates=candidates, comparisons="pairs") == {
        "responses": 2,
        "comparisons": 1,
    }
    pair = Comparison.objects.get(prompt=prompt)
    assert pair.response_a_id != pair.response_b_id
    ranking_project = ProjectFactory()
    other = PromptFactory(project=ranking_project)
    candidates = [Candidate(prompt_id=other.pk, text=t, model="m", variant=v) for t, v in
                  [("x", "a"), ("x", "b"), ("y", "b"), ("z", "a")]]  # fmt: skip
    candidates_add(project=ranking_project, job_id=None, candidates=candidates, comparisons="ranking")
    assert Comparison.objects.get(prompt=other).ranking_items.count() == 3


def test_chain_of_thought_answers_alike_but_reasoned_differently_are_two_responses():
    project = ProjectFactory()
    prompt = PromptFactory(project=project)
    candidates = [
        Candidate(prompt_id=prompt.pk, text="4", reasoning="2 + 2 = 4", model="m", variant="m@0.7"),
        Candidate(prompt_id=prompt.pk, text="4", reasoning="Two pairs make four", model="m", variant="m@0.7"),
    ]
    assert candidates_add(project=project, job_id=None, candidates=candidates, comparisons="pairs")["responses"] == 2


def test_few_shot_examples_leave_out_system_messages():
    project = ProjectFactory()
    pair = make_pair(project)
    pair.prompt.messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital?"}]
    pair.prompt.save()
    make_label(pair, choice="a")
    job = job_submit(kind="generate", project=project, config={"template": "few_shot", "k": 1, "prompts": "all"})
    other = PromptFactory(project=project)
    conversations = {item.prompt_id: item.messages for item in generate_task.conversations_for(_context(job))}
    assert conversations[other.pk][:2] == [
        {"role": "user", "content": "Capital?"},
        {"role": "assistant", "content": pair.response_a.text},
    ]
    assert conversations[pair.prompt_id] == pair.prompt.messages  # its own answer is the only example: zero-shot
