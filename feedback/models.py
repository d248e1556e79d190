"""Projects, prompts, responses, comparisons and labels.

The database itself enforces the invariants that every import path and every later job relies on (a pair is
stored once whatever its order, both sides of a comparison answer the same prompt, no duplicate prompt or
response), so a bug in one writer cannot corrupt what the exports and trainers read.
"""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q

LABELS_PER_ITEM_MAX = 100
LEASE_MINUTES_MAX = 24 * 60
MAX_PAIRS_PER_PROMPT_MAX = 1000


class Project(models.Model):
    class Mode(models.TextChoices):
        OFF = "off", "Not offered"
        OPTIONAL = "optional", "Optional"
        REQUIRED = "required", "Required"

    class ComparisonMode(models.TextChoices):
        PAIRS = "pairs", "Pairs"
        RANKING = "ranking", "N-way ranking"

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    guidelines = models.TextField(blank=True, help_text="Markdown shown to annotators above every item.")
    # Every setting has a validator, so the API's serializer, the admin and any ModelForm refuse a bad value with
    # a message naming the range before the CHECK constraints below would turn it into a database error.
    labels_per_item = models.PositiveSmallIntegerField(
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(LABELS_PER_ITEM_MAX)],
        help_text=f"k: distinct annotators per item (1–{LABELS_PER_ITEM_MAX}).",
    )
    lease_minutes = models.PositiveSmallIntegerField(
        default=10,
        validators=[MinValueValidator(1), MaxValueValidator(LEASE_MINUTES_MAX)],
        help_text=f"How long an annotator holds an item before it goes back to the pool (1–{LEASE_MINUTES_MAX}).",
    )
    allow_tie = models.BooleanField(default=True)
    allow_both_bad = models.BooleanField(default=True)
    strength_mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.OPTIONAL)
    rationale_mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.OPTIONAL)
    hide_model_names = models.BooleanField(default=True)
    gold_rate = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of served items that are gold (0–1).",
    )
    max_pairs_per_prompt = models.PositiveSmallIntegerField(
        default=6,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_PAIRS_PER_PROMPT_MAX)],
        help_text=f"At most this many pairs are made from one prompt's responses (1–{MAX_PAIRS_PER_PROMPT_MAX}).",
    )
    comparison_mode = models.CharField(max_length=10, choices=ComparisonMode.choices, default=ComparisonMode.PAIRS)
    show_gold_accuracy = models.BooleanField(default=False, help_text="Show annotators their own gold accuracy.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(gold_rate__gte=0) & Q(gold_rate__lte=1), name="project_gold_rate_0_1"),
            models.CheckConstraint(condition=Q(labels_per_item__gte=1), name="project_k_positive"),
            models.CheckConstraint(condition=Q(max_pairs_per_prompt__gte=1), name="project_pair_cap_positive"),
            # A zero lease expires as it is made: every claim would burn a new item for nobody.
            models.CheckConstraint(
                condition=Q(lease_minutes__gte=1) & Q(lease_minutes__lte=LEASE_MINUTES_MAX), name="project_lease_range"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Prompt(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="prompts")
    messages = models.JSONField(help_text="Chat messages: a list of {role, content}; the last is the user's.")
    metadata = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(max_length=64, help_text="sha256 of the canonical messages JSON.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "content_hash"], name="prompt_unique_hash")]

    def __str__(self) -> str:
        return (self.messages[-1]["content"] if self.messages else "")[:80]


class Response(models.Model):
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="responses")
    text = models.TextField()
    reasoning = models.TextField(
        blank=True, help_text="Chain-of-thought generations: the reasoning before the answer (`text`)."
    )
    model = models.CharField(max_length=200, blank=True, help_text="Source model or adapter name.")
    generation = models.JSONField(default=dict, blank=True, help_text="Sampling settings and template.")
    job = models.ForeignKey("training.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="responses")
    content_hash = models.CharField(
        max_length=64, help_text="sha256 of the text (with the reasoning, when there is some): feedback.hashing."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["prompt", "model", "content_hash"], name="response_unique_hash"),
        ]
        # The DB triggers that check comparisons read (id, prompt_id); this makes that lookup index-only.
        indexes = [models.Index(fields=["prompt", "id"], name="response_prompt_id")]

    def __str__(self) -> str:
        return self.text[:80] or "(empty response)"  # an imported judged pair may keep an empty answer


class Comparison(models.Model):
    """A pair of responses to one prompt, or an N-way ranking of 3–6 of them.

    Pairs are stored in canonical order (response_a.id < response_b.id), so one pair has one row whatever
    order it was imported or generated in; what the annotator saw on the left is recorded on the label.
    """

    class Kind(models.TextChoices):
        PAIR = "pair", "Pair"
        RANKING = "ranking", "Ranking"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="comparisons")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="comparisons")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.PAIR)
    response_a = models.ForeignKey(Response, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    response_b = models.ForeignKey(Response, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    members_key = models.CharField(max_length=200, help_text="Sorted response ids; one row per set of responses.")
    priority = models.IntegerField(default=0)
    label_count = models.PositiveIntegerField(
        default=0, help_text="Labels from this project's annotators; kept in step with Label rows by the services."
    )
    gold_choice = models.CharField(max_length=16, blank=True, help_text="Known answer for gold items.")
    servable = models.BooleanField(
        default=True,
        help_text="False when a side is an empty answer (imported judged pairs): kept and counted in everything "
        "computed from judgements, never served to annotators.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["prompt", "members_key"], name="comparison_unique_members"),
            models.CheckConstraint(
                condition=(
                    Q(kind="pair", response_a__isnull=False, response_b__isnull=False, response_a__lt=F("response_b"))
                    | Q(kind="ranking", response_a__isnull=True, response_b__isnull=True)
                ),
                name="comparison_pair_canonical",
            ),
            models.CheckConstraint(
                condition=Q(gold_choice__in=["", "a", "b", "tie", "both_bad"]), name="comparison_gold_choice_valid"
            ),
        ]
        indexes = [models.Index(fields=["project", "-priority", "-label_count", "id"], name="comparison_queue")]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} on prompt {self.prompt_id}"


class RankingItem(models.Model):
    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="ranking_items")
    response = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["comparison", "response"], name="rankingitem_unique_response"),
            models.UniqueConstraint(fields=["comparison", "position"], name="rankingitem_unique_position"),
        ]

    def __str__(self) -> str:
        return f"response {self.response_id} at {self.position} in comparison {self.comparison_id}"


class Label(models.Model):
    """One judgement of a comparison, by one of our annotators or by a named external source.

    `choice` is relative to the comparison's canonical order (a = response_a). Imported judgements (a public
    preference set, an arena, an LLM judge, the demo team) carry `source` and an `import_key`, which makes
    re-importing the same file a no-op.
    """

    class Choice(models.TextChoices):
        A = "a", "A is better"
        B = "b", "B is better"
        TIE = "tie", "Tie"
        BOTH_BAD = "both_bad", "Both bad"
        RANKING = "ranking", "Ranking"

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="labels")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="labels"
    )
    source = models.CharField(max_length=120, blank=True, help_text="External source of an imported label.")
    choice = models.CharField(max_length=10, choices=Choice.choices)
    ranking = models.JSONField(
        null=True, blank=True, help_text="Rankings: response ids best first; a nested list is a tie."
    )
    strength = models.PositiveSmallIntegerField(null=True, blank=True, help_text="1 slightly, 2 clearly, 3 much.")
    rationale = models.TextField(blank=True)
    import_key = models.CharField(
        max_length=64,
        null=True,
        blank=True,
        db_index=True,
        help_text="Imported labels: hash of source and row; unique per comparison, so one file imports into many "
        "projects and re-imports into one add nothing.",
    )
    assignment = models.OneToOneField(
        "Assignment",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="label",
        help_text="One assignment, one label: a double submit cannot store two.",
    )
    shown_left = models.ForeignKey(
        Response,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The response the annotator saw on the left (A).",
    )
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True, help_text="From render to submit.")
    idempotency_key = models.CharField(max_length=100, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(annotator__isnull=False) | ~Q(source=""), name="label_has_annotator_or_source"
            ),
            models.UniqueConstraint(
                fields=["annotator", "idempotency_key"],
                name="label_unique_idempotency_key",
                condition=Q(idempotency_key__isnull=False),
            ),
            models.CheckConstraint(
                condition=Q(strength__isnull=True) | Q(strength__gte=1, strength__lte=3), name="label_strength_1_3"
            ),
            models.UniqueConstraint(
                fields=["comparison", "import_key"],
                name="label_unique_import_key",
                condition=Q(import_key__isnull=False),
            ),
        ]
        indexes = [models.Index(fields=["comparison", "created_at"], name="label_comparison")]

    def __str__(self) -> str:
        who = self.annotator or self.source
        return f"{self.choice} by {who} on comparison {self.comparison_id}"


class Assignment(models.Model):
    """One annotator's lease on one comparison.

    Unique per (comparison, annotator): nobody is given an item twice, nor one they skipped. A lease counts
    toward the comparison's k while it is unexpired; expiry is read in the claim query itself, so there is no
    sweeper to fall behind.
    """

    class Status(models.TextChoices):
        LEASED = "leased", "Leased"
        SUBMITTED = "submitted", "Submitted"
        SKIPPED = "skipped", "Skipped"

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.LEASED)
    display_order = models.JSONField(help_text="Response ids in the order shown (left to right, or top to bottom).")
    leased_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    shown_at = models.DateTimeField(null=True, blank=True, help_text="When the page first showed it.")
    finished_at = models.DateTimeField(null=True, blank=True)
    skip_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["comparison", "annotator"], name="assignment_once_per_annotator"),
        ]
        indexes = [
            models.Index(fields=["comparison", "status", "expires_at"], name="assignment_active"),
            models.Index(fields=["annotator", "status", "leased_at"], name="assignment_mine"),
        ]

    def __str__(self) -> str:
        return f"{self.annotator} on comparison {self.comparison_id} ({self.status})"


class Demonstration(models.Model):
    """An ideal response written or edited by an annotator, for instruction tuning (SFT)."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="demonstrations")
    comparison = models.ForeignKey(Comparison, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    based_on = models.ForeignKey(
        Response,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The response the annotator started from, if any.",
    )
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="demonstrations")
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.text[:80]


class Flag(models.Model):
    class Reason(models.TextChoices):
        HARMFUL = "harmful", "Harmful"
        BROKEN = "broken", "Broken"
        UNREADABLE = "unreadable", "Unreadable"

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="flags")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="flags")
    reason = models.CharField(max_length=12, choices=Reason.choices)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.reason} flag on comparison {self.comparison_id}"
