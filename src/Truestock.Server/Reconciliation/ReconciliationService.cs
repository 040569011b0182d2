using System.Globalization;
using Microsoft.Extensions.Options;
using Truestock.Core;
using Truestock.Server.Channels;
using Truestock.Server.Engine;
using Truestock.Server.Http;
using Truestock.Server.Storage;

namespace Truestock.Server.Reconciliation;

/// <summary>The probable causes of a variance (see docs/reconciliation.md).</summary>
internal static class Causes
{
    public const string UnknownLocation = "unknown-location";
    public const string ErpPostingPending = "erp-posting-pending";
    public const string ErpPostingDead = "erp-posting-dead";
    public const string LateMovement = "late-movement";
    public const string ProbableDuplicate = "probable-duplicate";
    public const string AsOfUnknown = "as-of-unknown";
    public const string PublicationPending = "publication-pending";
    public const string PublicationDeadLettered = "publication-dead-lettered";
    public const string PublishedAfterSnapshot = "published-after-snapshot";
    public const string NeverPublished = "never-published";
    public const string NoConnector = "no-connector";
    public const string Unexplained = "unexplained";

    /// <summary>Causes where the difference is on its way to being settled by itself: no exception for a person.</summary>
    public static bool InFlight(string cause) => cause is ErpPostingPending or PublicationPending or PublishedAfterSnapshot;

    /// <summary>Causes that say the hub's own record may be wrong, so that a count to the system's number is worth proposing.</summary>
    public static bool HubMayBeWrong(string cause) => cause is Unexplained or ProbableDuplicate;
}

/// <summary>The repairs a variance can get.</summary>
internal static class Repairs
{
    public const string None = "none";
    public const string Republished = "republished";
    public const string AlreadyPending = "already-pending";
    public const string Proposed = "proposed";
}

/// <summary>Proposal states.</summary>
internal static class ProposalStates
{
    public const string Proposed = "proposed";
    public const string Approving = "approving";
    public const string Approved = "approved";
    public const string Rejected = "rejected";

    public static bool IsKnown(string? state) => state is Proposed or Approving or Approved or Rejected;
}

/// <summary>Why a run could not start.</summary>
internal enum RunRefusal
{
    /// <summary>It started (and finished or failed).</summary>
    None,
    /// <summary>There is no snapshot with that id.</summary>
    UnknownSnapshot,
    /// <summary>The snapshot is still being uploaded.</summary>
    SnapshotIncomplete,
    /// <summary>This hub is not the writer.</summary>
    NotWriter,
}

/// <summary>The outcome of approving or rejecting a proposal.</summary>
internal enum DecisionResult
{
    /// <summary>Decided now (or, for an approval, already approved: approving again changes nothing).</summary>
    Done,
    /// <summary>No such proposal.</summary>
    Unknown,
    /// <summary>The proposal is in a state that does not allow this decision.</summary>
    Conflict,
}

/// <summary>
/// Reconciliation runs, their variances, causes and repairs, and the decisions on proposed counts. A run compares a
/// stored snapshot page by page (1,000 rows at a time: one engine read per page, so memory stays bounded and the engine
/// is never held for long) with the hub's view: for the ERP and the WMS, onHand as of the snapshot's time
/// (<see cref="Shard.OnHandAsOf"/>); for a channel, the channel's ATS now. One run at a time.
/// </summary>
internal sealed class ReconciliationService(
    Sequencer engine,
    HubMetrics metrics,
    TimeProvider time,
    IOptions<ReconciliationOptions> options,
    SyncSignal signal,
    DriftExceptions drift,
    ILogger<ReconciliationService> log)
{
    /// <summary>Snapshot rows compared per engine read.</summary>
    public const int PageRows = 1000;

    /// <summary>Ledger rows of a position looked at for the causes of its variance.</summary>
    private const int CauseLedgerRowsMax = 5000;

    private readonly SemaphoreSlim _oneRun = new(1, 1);

    private AdoJournal Journal => engine.Journal;

    /// <summary>Runs a snapshot; the run is stored whatever happens, and its record is returned.</summary>
    public async Task<(RunRefusal Refusal, ReconRunRecord? Run)> Run(long snapshotId, string origin, CancellationToken cancellationToken)
    {
        if (engine.Role != EngineRole.Writer)
        {
            return (RunRefusal.NotWriter, null);
        }
        var snapshot = Journal.ReadReconSnapshot(snapshotId);
        if (snapshot is null)
        {
            return (RunRefusal.UnknownSnapshot, null);
        }
        if (snapshot.State != "complete")
        {
            return (RunRefusal.SnapshotIncomplete, null);
        }
        await _oneRun.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var runId = Journal.CreateReconRun(snapshot, origin, time.GetUtcNow());
            var tally = new Tally();
            try
            {
                if (snapshot.System == ReconSystems.Channel)
                {
                    await RunChannel(snapshot, runId, tally, cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    await RunPhysical(snapshot, runId, tally, cancellationToken).ConfigureAwait(false);
                }
                Journal.FinishReconRun(runId, "finished", time.GetUtcNow(), tally.Compared, tally.Matched, tally.Unknown, tally.Variances,
                    tally.OverThreshold, tally.UnitsAbsolute, null);
            }
            catch (Exception ex) when (ex is EngineUnavailableException or RunFailedException)
            {
                // The run is kept as failed with what it found so far, so operators see why; the exception is not lost.
                log.LogWarning(ex, "Reconciliation run {RunId} of snapshot {SnapshotId} failed.", runId, snapshotId);
                Journal.FinishReconRun(runId, "failed", time.GetUtcNow(), tally.Compared, tally.Matched, tally.Unknown, tally.Variances,
                    tally.OverThreshold, tally.UnitsAbsolute, ex.Message);
            }
            log.LogInformation("Reconciliation run {RunId} ({System} {SystemId}, snapshot {SnapshotId}, {Origin}): {Compared} compared, {Variances} variance(s), {Over} over threshold.",
                runId, snapshot.System, snapshot.SystemId, snapshotId, origin, tally.Compared, tally.Variances, tally.OverThreshold);
            return (RunRefusal.None, Journal.ReadReconRun(runId));
        }
        finally
        {
            _oneRun.Release();
        }
    }

    // ------------------------------------------------------------------ ERP and WMS: onHand as of the snapshot

    private async Task RunPhysical(ReconSnapshotRecord snapshot, long runId, Tally tally, CancellationToken cancellationToken)
    {
        var asOf = snapshot.AsOf;
        string afterSku = "", afterLocation = "";
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var rows = Journal.ReadReconRows(snapshot.SnapshotId, afterSku, afterLocation, PageRows);
            if (rows.Count == 0)
            {
                break;
            }
            (afterSku, afterLocation) = (rows[^1].Sku, rows[^1].LocationId);
            var hub = await engine.Read((shard, _) =>
            {
                var answers = new (bool LocationKnown, long? Expected)[rows.Count];
                for (var i = 0; i < rows.Count; i++)
                {
                    answers[i] = (shard.FindLocation(rows[i].LocationId) is not null, shard.OnHandAsOf(rows[i].Sku, rows[i].LocationId, asOf));
                }
                return answers;
            }).ConfigureAwait(false);
            var found = new List<Finding>();
            for (var i = 0; i < rows.Count; i++)
            {
                tally.Compared++;
                var (known, expected) = hub[i];
                var r = rows[i];
                if (expected == r.Quantity)
                {
                    tally.Matched++;
                    continue;
                }
                found.Add(new Finding(r.Sku, r.LocationId, null, known ? expected : 0, r.Quantity, r.UnitCost, known, expected is null && known));
            }
            Record(snapshot, runId, tally, found);
        }
        if (snapshot.Scope == "full")
        {
            await Unmentioned(snapshot, runId, tally).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// A full snapshot claims everything its system holds at its locations: a position of the hub at one of them that
    /// the snapshot does not mention is reported as 0.
    /// </summary>
    private async Task Unmentioned(ReconSnapshotRecord snapshot, long runId, Tally tally)
    {
        var locations = Journal.ReadReconSnapshotLocations(snapshot.SnapshotId).ToHashSet(StringComparer.Ordinal);
        var asOf = snapshot.AsOf;
        var candidates = await engine.Read((shard, _) =>
        {
            var list = new List<(string Sku, string LocationId, long? Expected)>();
            foreach (var sku in shard.Skus)
            {
                foreach (var p in shard.PositionsOf(sku))
                {
                    if (locations.Contains(p.LocationId) && shard.OnHandAsOf(p.Sku, p.LocationId, asOf) is var expected && expected != 0)
                    {
                        list.Add((p.Sku, p.LocationId, expected));
                    }
                }
            }
            return list;
        }).ConfigureAwait(false);
        foreach (var chunk in candidates.Chunk(500))
        {
            var present = Journal.FindReconRows(snapshot.SnapshotId, chunk.Select(c => c.Sku).Distinct(StringComparer.Ordinal).ToArray());
            var found = new List<Finding>();
            foreach (var (sku, location, expected) in chunk)
            {
                if (present.Contains((sku, location)))
                {
                    continue;
                }
                tally.Compared++;
                found.Add(new Finding(sku, location, null, expected, 0, null, true, expected is null));
            }
            Record(snapshot, runId, tally, found);
        }
    }

    // ------------------------------------------------------------------ channels: ATS now

    private async Task RunChannel(ReconSnapshotRecord snapshot, long runId, Tally tally, CancellationToken cancellationToken)
    {
        var channelId = snapshot.SystemId;
        var channel = await engine.Read((shard, _) => shard.FindChannel(channelId)).ConfigureAwait(false)
            ?? throw new RunFailedException($"Channel '{channelId}' is not declared; PUT /v1/channels/{channelId} first, then run the snapshot again.");
        var mentioned = snapshot.Scope == "full" ? new HashSet<string>(StringComparer.Ordinal) : null;
        string afterSku = "";
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var rows = Journal.ReadReconRows(snapshot.SnapshotId, afterSku, "", PageRows);
            if (rows.Count == 0)
            {
                break;
            }
            afterSku = rows[^1].Sku;
            var ats = await engine.Read((shard, now) =>
            {
                var current = shard.FindChannel(channelId);
                return rows.Select(r => current is null ? 0 : shard.Ats(current, r.Sku, now)).ToArray();
            }).ConfigureAwait(false);
            var found = new List<Finding>();
            for (var i = 0; i < rows.Count; i++)
            {
                tally.Compared++;
                mentioned?.Add(rows[i].Sku);
                if (ats[i] == rows[i].Quantity)
                {
                    tally.Matched++;
                    continue;
                }
                found.Add(new Finding(rows[i].Sku, null, channelId, ats[i], rows[i].Quantity, rows[i].UnitCost, true, false, channel.ConnectorJson is not null));
            }
            Record(snapshot, runId, tally, found);
        }
        if (mentioned is not null)
        {
            // A full channel snapshot lists every SKU the channel shows: one it leaves out shows nothing (0).
            var missing = await engine.Read((shard, now) =>
            {
                var current = shard.FindChannel(channelId);
                var list = new List<(string Sku, long Ats)>();
                if (current is not null)
                {
                    foreach (var sku in shard.Skus)
                    {
                        if (!mentioned.Contains(sku) && shard.Ats(current, sku, now) is var a && a != 0)
                        {
                            list.Add((sku, a));
                        }
                    }
                }
                return list;
            }).ConfigureAwait(false);
            foreach (var chunk in missing.Chunk(PageRows))
            {
                tally.Compared += chunk.Length;
                Record(snapshot, runId, tally,
                    chunk.Select(m => new Finding(m.Sku, null, channelId, m.Ats, 0, null, true, false, channel.ConnectorJson is not null)).ToList());
            }
        }
    }

    // ------------------------------------------------------------------ causes, thresholds, repairs

    private void Record(ReconSnapshotRecord snapshot, long runId, Tally tally, List<Finding> found)
    {
        if (found.Count == 0)
        {
            return;
        }
        var threshold = options.Value.Thresholds.GetValueOrDefault(snapshot.System);
        var now = time.GetUtcNow();
        var variances = new List<ReconVarianceRecord>(found.Count);
        var proposals = new Dictionary<int, ReconProposalRecord>();
        var republish = new List<(string Sku, long Ats)>();
        foreach (var f in found)
        {
            var no = ++tally.Variances;
            if (f.Unknown)
            {
                tally.Unknown++;
                variances.Add(new ReconVarianceRecord(runId, no, f.Sku, f.LocationId, f.ChannelId, null, f.Reported, null, f.UnitCost, null,
                    Causes.AsOfUnknown,
                    "The hub cannot know this position's onHand as of the snapshot exactly: it was counted after asOf, or asOf is older than the movements it still remembers. Compare with a newer snapshot.",
                    false, Repairs.None, null, null));
                continue;
            }
            var expected = f.Expected!.Value;
            var difference = f.Reported - expected;
            tally.UnitsAbsolute += Math.Abs(difference);
            var (cause, detail) = f.ChannelId is null ? PhysicalCause(snapshot, f, expected) : ChannelCause(snapshot, f, expected);
            var over = Over(threshold, expected, difference);
            string repair = Repairs.None;
            if (f.ChannelId is not null)
            {
                // A channel showing the wrong number is cheap and safe to fix whatever the threshold: publish the latest ATS again.
                if (cause == Causes.PublicationPending)
                {
                    repair = Repairs.AlreadyPending;
                }
                else if (cause is Causes.PublicationDeadLettered or Causes.NeverPublished or Causes.Unexplained)
                {
                    repair = Repairs.Republished;
                    republish.Add((f.Sku, expected));
                }
            }
            else if (over && Causes.HubMayBeWrong(cause))
            {
                repair = Repairs.Proposed;
                proposals[variances.Count] = new ReconProposalRecord(0, runId, no, f.Sku, f.LocationId!, "counted", f.Reported, snapshot.AsOf, "",
                    ProposalStates.Proposed, now, null, null, null, null, null, null);
            }
            if (over)
            {
                tally.OverThreshold++;
            }
            variances.Add(new ReconVarianceRecord(runId, no, f.Sku, f.LocationId, f.ChannelId, expected, f.Reported, difference, f.UnitCost,
                f.UnitCost is { } cost ? cost * difference : null, cause, detail, over, repair, repair == Repairs.Proposed ? -1 : null, null));
        }
        var stored = Journal.InsertReconVariances(variances, proposals);
        if (republish.Count > 0)
        {
            var nowMs = now.ToUnixTimeMilliseconds();
            var version = Math.Max(1, engine.AppliedSeq);
            foreach (var (sku, ats) in republish)
            {
                Journal.RequeueChannelSync(snapshot.SystemId, sku, ats, version, nowMs);
            }
            signal.Notify();
        }
        foreach (var v in stored)
        {
            if (v.OverThreshold && !Causes.InFlight(v.Cause) && drift.Raise(v, snapshot) is { } reference)
            {
                Journal.SetReconVarianceException(v.RunId, v.VarianceNo, reference);
            }
        }
    }

    /// <summary>Over when the difference exceeds every limit that is set (a limit of 0 is not set); with none set, every variance is over.</summary>
    private static bool Over(ReconciliationThreshold? threshold, long expected, long difference)
    {
        var units = Math.Abs(difference);
        if (units == 0)
        {
            return false;
        }
        if (threshold is null)
        {
            return true;
        }
        var overUnits = threshold.Units <= 0 || units > threshold.Units;
        var overPercent = threshold.Percent <= 0 || units * 100.0 > threshold.Percent * Math.Max(Math.Abs(expected), 1);
        return overUnits && overPercent;
    }

    private (string Cause, string? Detail) PhysicalCause(ReconSnapshotRecord snapshot, Finding f, long expected)
    {
        var asOf = snapshot.AsOf;
        var sku = f.Sku;
        var location = f.LocationId!;
        if (!f.LocationKnown)
        {
            return (Causes.UnknownLocation, $"Location '{location}' is not declared in the hub; declare it (PUT /v1/locations/{location}) or map the {snapshot.System}'s location id.");
        }
        // What the hub holds minus what the system reports: the units the system has not seen.
        var missingInSystem = expected - f.Reported;
        if (snapshot.System == ReconSystems.Erp)
        {
            var unposted = Journal.ReadUnpostedErpMovements(sku, location).Where(u => u.Movement.OccurredAt <= asOf && u.Movement.OnHandDelta != 0).ToList();
            if (unposted.Count > 0)
            {
                var units = unposted.Sum(u => u.Movement.OnHandDelta);
                var dead = unposted.Any(u => u.ErpStatus == AdoJournal.ErpStatus.Dead);
                var share = units == missingInSystem ? "which explains the whole difference" : $"which explains {units} of the {missingInSystem} unit(s)";
                return (dead ? Causes.ErpPostingDead : Causes.ErpPostingPending,
                    $"{unposted.Count} movement(s) at or before asOf, {Signed(units)} unit(s), are not booked in the ERP yet ({(dead ? "some are dead letters: replay them with POST /v1/erp/dead-letters/replay" : "the poster is still trying")}), {share}. Ledger ids: {Ids(unposted.Select(u => u.Movement.LedgerId))}.");
            }
        }
        var movements = Journal.ReadRecentMovements(sku, location, CauseLedgerRowsMax)
            .Where(m => m.Status == "applied" && m.EventId is not null && m.OnHandDelta != 0 && m.OccurredAt <= asOf)
            .ToList();
        var late = movements.Where(m => m.RecordedAt > asOf).ToList();
        if (late.Count > 0)
        {
            var units = late.Sum(m => m.OnHandDelta);
            var share = units == missingInSystem ? "which explains the whole difference" : $"which explains {units} of the {missingInSystem} unit(s)";
            return (Causes.LateMovement,
                $"{late.Count} movement(s) that happened before asOf reached the hub only after it ({Signed(units)} unit(s)); the {snapshot.System} probably did not have them when it took the snapshot, {share}. Event ids: {Ids(late.Select(m => m.EventId!))}.");
        }
        var repeats = movements
            .GroupBy(m => (m.Type, m.Quantity, m.OccurredAt.UtcTicks, m.Source))
            .Where(g => g.Count() > 1)
            .ToList();
        if (repeats.Count > 0)
        {
            var extra = repeats.Sum(g => g.Skip(1).Sum(m => m.OnHandDelta));
            var share = extra == missingInSystem ? "which explains the whole difference" : $"which would account for {extra} unit(s)";
            return (Causes.ProbableDuplicate,
                $"The hub applied the same movement more than once under different event ids (same type, quantity, occurredAt and source): {string.Join("; ", repeats.Select(g => $"{g.Key.Type} {g.Key.Quantity} from {g.Key.Source} at {new DateTimeOffset(g.Key.UtcTicks, TimeSpan.Zero):O} as {Ids(g.Select(m => m.EventId!))}"))}, {share}.");
        }
        return (Causes.Unexplained, "The ledger shows nothing that explains the difference (no unposted, late or repeated movement): a movement the hub never received (a missed webhook, a manual change in the system) is the usual reason.");
    }

    private (string Cause, string? Detail) ChannelCause(ReconSnapshotRecord snapshot, Finding f, long ats)
    {
        if (!f.HasConnector)
        {
            return (Causes.NoConnector, $"Channel '{f.ChannelId}' has no connector, so the hub does not publish to it; what it shows is set elsewhere.");
        }
        var state = Journal.ReadChannelSyncState(f.ChannelId!, f.Sku);
        if (state is not { } s)
        {
            return (Causes.NeverPublished, $"The hub has never published this SKU to the channel; it is queued now with ATS {ats}.");
        }
        if (s.Dead)
        {
            return (Causes.PublicationDeadLettered, $"The publication is a dead letter ({s.LastError ?? "no error recorded"}); it is queued again with the latest ATS.");
        }
        if (s.Pending)
        {
            return (Causes.PublicationPending, $"A publication of ATS {s.Ats} is on its way to the channel.");
        }
        if (s.PublishedAts == ats && s.PublishedAtMs is { } at && at > snapshot.AsOf.ToUnixTimeMilliseconds())
        {
            return (Causes.PublishedAfterSnapshot,
                $"The channel acknowledged ATS {ats} at {DateTimeOffset.FromUnixTimeMilliseconds(at):O}, after the snapshot was taken.");
        }
        return (Causes.Unexplained,
            $"The hub published {s.PublishedAts?.ToString(CultureInfo.InvariantCulture) ?? "nothing"} and nothing is pending, yet the channel shows {f.Reported}: it was changed on the channel's side or a call was lost. The latest ATS is published again.");
    }

    private static string Signed(long units) => units.ToString("+0;-0;0", CultureInfo.InvariantCulture);

    private static string Ids<T>(IEnumerable<T> ids)
    {
        var list = ids.Take(11).Select(i => Convert.ToString(i, CultureInfo.InvariantCulture)).ToList();
        return list.Count > 10 ? string.Join(", ", list.Take(10)) + ", …" : string.Join(", ", list);
    }

    // ------------------------------------------------------------------ proposals

    /// <summary>
    /// Approves a proposal: applies its event through the engine, like POST /v1/events, with the eventId derived from
    /// the proposal id, so that approving twice (or after a crash midway) applies it exactly once.
    /// </summary>
    public async Task<(DecisionResult Result, ReconProposalRecord? Proposal)> Approve(long proposalId, string decidedBy, string? apiKey, string? reason)
    {
        var proposal = Journal.ReadReconProposal(proposalId);
        if (proposal is null)
        {
            return (DecisionResult.Unknown, null);
        }
        if (proposal.State == ProposalStates.Approved)
        {
            return (DecisionResult.Done, proposal);
        }
        if (proposal.State == ProposalStates.Rejected)
        {
            return (DecisionResult.Conflict, proposal);
        }
        // Claiming first keeps a concurrent reject out; a proposal left 'approving' by a crash is finished by approving again.
        var now = time.GetUtcNow();
        if (proposal.State == ProposalStates.Proposed
            && !Journal.DecideReconProposal(proposalId, ProposalStates.Proposed, ProposalStates.Approving, now, decidedBy, apiKey, reason, null, null))
        {
            var current = Journal.ReadReconProposal(proposalId)!;
            return current.State == ProposalStates.Rejected ? (DecisionResult.Conflict, current) : await Approve(proposalId, decidedBy, apiKey, reason).ConfigureAwait(false);
        }
        var e = EventEndpoints.Create(proposal.EventId, EventType.Counted, proposal.Sku, proposal.LocationId, proposal.Quantity, proposal.OccurredAt,
            "reconciliation", $"recon-proposal-{proposalId.ToString(CultureInfo.InvariantCulture)}");
        var outcome = (await EventEndpoints.Apply(engine, metrics, [e]).ConfigureAwait(false))[0];
        Journal.DecideReconProposal(proposalId, ProposalStates.Approving, ProposalStates.Approved, time.GetUtcNow(), decidedBy, apiKey, reason,
            Shard.StatusName(outcome.Status), outcome.ErrorType is null ? null : $"{Problems.TypeBase}{outcome.ErrorType}: {outcome.ErrorDetail}");
        return (DecisionResult.Done, Journal.ReadReconProposal(proposalId));
    }

    /// <summary>Rejects a proposal with a reason; nothing is applied. Only a proposal still waiting can be rejected.</summary>
    public (DecisionResult Result, ReconProposalRecord? Proposal) Reject(long proposalId, string decidedBy, string? apiKey, string reason)
    {
        var proposal = Journal.ReadReconProposal(proposalId);
        if (proposal is null)
        {
            return (DecisionResult.Unknown, null);
        }
        if (!Journal.DecideReconProposal(proposalId, ProposalStates.Proposed, ProposalStates.Rejected, time.GetUtcNow(), decidedBy, apiKey, reason, null, null))
        {
            return (DecisionResult.Conflict, Journal.ReadReconProposal(proposalId));
        }
        return (DecisionResult.Done, Journal.ReadReconProposal(proposalId));
    }

    private sealed class Tally
    {
        public long Compared;
        public long Matched;
        public long Unknown;
        public long Variances;
        public long OverThreshold;
        public long UnitsAbsolute;
    }

    /// <summary>A row that differs (or cannot be compared), before its cause is looked up.</summary>
    private sealed record Finding(string Sku, string? LocationId, string? ChannelId, long? Expected, long Reported, decimal? UnitCost, bool LocationKnown,
        bool Unknown, bool HasConnector = false);
}

/// <summary>A run that cannot go on (an undeclared channel); it is stored as failed with this message.</summary>
internal sealed class RunFailedException(string message) : Exception(message);
