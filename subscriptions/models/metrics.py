from django.db import models

MONEY = {"max_digits": 19, "decimal_places": 4, "default": 0}


class FinanceSegment(models.Model):
    """The segment a subscription is counted in by Finance: one set of fields for the snapshots and the
    carried state (``services.finance_snapshots.SEGMENT_COLUMNS`` names them for its SQL)."""

    product = models.CharField(max_length=64)
    plan = models.CharField(max_length=64)
    platform = models.CharField(max_length=16)
    provider = models.CharField(max_length=16)
    country = models.CharField(max_length=2)
    currency = models.CharField(max_length=3)

    class Meta:
        abstract = True


class MetricsDay(FinanceSegment):
    """One day's subscription metrics for one segment: product, plan, platform, provider, country and
    currency (a snapshot; the definitions are in ``subscriptions.selectors_finance``).

    Every figure is additive across segments, so any cut (or the total) is a ``GROUP BY`` of these rows.
    Amounts are in the segment's currency. A trial has no currency: its rows have ``currency=''``.
    Written only set-based by ``services.finance_snapshots``.
    """

    day = models.DateField()
    active = models.IntegerField(default=0)
    mrr = models.DecimalField(**MONEY)
    mrr_start = models.DecimalField(**MONEY)
    new = models.DecimalField(**MONEY)
    reactivation = models.DecimalField(**MONEY)
    expansion = models.DecimalField(**MONEY)
    contraction = models.DecimalField(**MONEY)
    churn = models.DecimalField(**MONEY)
    new_count = models.IntegerField(default=0)
    reactivation_count = models.IntegerField(default=0)
    churn_count = models.IntegerField(default=0)
    trials_started = models.IntegerField(default=0)
    trials_ended = models.IntegerField(default=0)
    trials_converted = models.IntegerField(default=0)
    refreshed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "product", "plan", "platform", "provider", "country", "currency"],
                name="uniq_metrics_day_segment",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.plan} {self.platform} {self.country} {self.currency}"


class RetentionCell(models.Model):
    """A retention cohort's cell: of the ``size`` subscriptions first paid in ``cohort`` (a month),
    ``kept`` were still paid for ``offset`` months after their first payment (a snapshot)."""

    cohort = models.DateField()
    offset = models.IntegerField()
    size = models.IntegerField()
    kept = models.IntegerField()
    refreshed_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["cohort", "offset"], name="uniq_retention_cell")]

    def __str__(self) -> str:
        return f"{self.cohort:%Y-%m} +{self.offset}: {self.kept}/{self.size}"


class FinanceState(FinanceSegment):
    """What the daily snapshots counted a subscription as, over a run of days: its segment and its MRR
    (a carried state; ``services.finance_snapshots`` writes it, nothing else reads it).

    A row holds at the end of every day from ``since`` up to (not including) ``until``; the open row
    (``until`` null) is the subscription's state at the end of the last day carried. A subscription
    with no row holding on a day was not active at its end. Refreshing a day starts from the day
    before's rows and recomputes only the subscriptions that moved that day, so a row is added only
    when a subscription's segment or MRR changes (not at each renewal at the same price).
    """

    subscription = models.ForeignKey("subscriptions.Subscription", on_delete=models.CASCADE, related_name="+")
    since = models.DateField()
    until = models.DateField(null=True)
    mrr = models.DecimalField(max_digits=19, decimal_places=4)

    class Meta:
        indexes = [
            # A moved subscription's state at the end of the day before: its open row.
            models.Index(
                fields=["subscription"], name="finance_state_open_idx", condition=models.Q(until__isnull=True)
            ),
            # Undoing the days after a late event's day: rows begun, or closed, after it. Closed rows
            # only: an index holding the open rows too would be the planner's pick for them (``until IS
            # NULL``) when the statistics are behind, read whole for each moved subscription.
            models.Index(fields=["since"], name="finance_state_since_idx"),
            models.Index(fields=["until"], name="finance_state_closed_idx", condition=models.Q(until__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"subscription {self.subscription_id} {self.since}..{self.until or ''} {self.mrr} {self.currency}"


class FinancePeriodEnd(models.Model):
    """When a subscription's latest paid period ends, as the carry of ``day`` (or the seed) counted it
    (``services.finance_snapshots`` writes it, nothing else reads it).

    The subscriptions whose period ends on a day are then a range of ``ends`` on its index, not a
    month-ago window of payments followed to their subscriptions. A row per paid period that became
    a subscription's latest; a period superseded before its end leaves a row that only makes its
    subscription a candidate that day (the carry recomputes every candidate exactly).
    """

    # Keyed by the end first: a day's movers are a range of the key. No surrogate id and no database
    # foreign key: a day writes thousands of these rows set-based, and each index or deferred key check
    # is a share of the day's refresh (Django still cascades a subscription's deletion to them).
    pk = models.CompositePrimaryKey("ends", "subscription", "day")
    subscription = models.ForeignKey(
        "subscriptions.Subscription", on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    ends = models.DateTimeField()
    day = models.DateField()

    class Meta:
        # Undoing the days after a late event's day.
        indexes = [models.Index(fields=["day"], name="finance_period_end_day_idx")]

    def __str__(self) -> str:
        return f"subscription {self.subscription_id} paid until {self.ends:%Y-%m-%d %H:%M} (as of {self.day})"


class FinanceSegmentChange(models.Model):
    """A change to what segments a subscription: its plan, platform, provider or customer, or its
    customer's country (a row per change, written by PostgreSQL triggers, migration 0018, so a set-based
    update or raw SQL is recorded too; ``services.finance_snapshots`` reads it, nothing else).

    The carry re-reads a candidate's subscription and customer only on the day one of these changed;
    otherwise the candidate stays in the segment its state row holds. ``changed_at`` is the
    subscription's ``updated_at`` when the change stamped it, else the database's clock.
    """

    # No database foreign key and no index on it: written by triggers on the hot tables, read only by the
    # day (Django still cascades a subscription's deletion to these rows).
    subscription = models.ForeignKey(
        "subscriptions.Subscription", on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    changed_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["changed_at"], name="finance_segment_change_idx")]

    def __str__(self) -> str:
        return f"subscription {self.subscription_id} segment changed {self.changed_at:%Y-%m-%d %H:%M}"


class FinanceCarry(models.Model):
    """The one row saying which days ``FinanceState`` holds: from the end of ``seed`` (a state derived
    from the payments whole) to the end of ``through`` (carried forward a day at a time)."""

    seed = models.DateField()
    through = models.DateField()

    def __str__(self) -> str:
        return f"carried {self.seed}..{self.through}"
