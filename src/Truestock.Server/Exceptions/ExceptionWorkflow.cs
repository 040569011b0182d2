using System.Globalization;
using Truestock.Core;
using Truestock.Server.Engine;
using Truestock.Server.Http;
using Truestock.Server.Storage;

namespace Truestock.Server.Exceptions;

/// <summary>Optional figures of a drift exception, stored for the drift report and shown on the exception.</summary>
/// <param name="Expected">What the hub expected (e.g. its on-hand or ATS as of the snapshot).</param>
/// <param name="Reported">What the other system reported.</param>
/// <param name="System">The system that disagrees, e.g. "erp", "wms", "channel:web" (1–64 characters).</param>
/// <param name="Reference">Where it was found, e.g. "run:42/variance:7" (1–256 characters).</param>
/// <param name="DedupeKey">
/// When given and an unresolved drift exception has the same key, that one is updated (quantity, figures, detail, last
/// seen, occurrences) instead of raising a new one, so that a drift found by every hourly run is one item for a person.
/// </param>
internal sealed record DriftFigures(long? Expected = null, long? Reported = null, string? System = null, string? Reference = null, string? DedupeKey = null);

/// <summary>What <see cref="ExceptionWorkflow.Raise"/> stored: the exception's key and id, and whether it updated an unresolved one.</summary>
internal sealed record RaisedException(string Key, long Id, bool Repeated);

/// <summary>Why a workflow request was refused; each maps to a problem+json answer.</summary>
internal enum WorkflowRejection
{
    None,
    NotFound,
    IllegalTransition,
    DeadLetterNeedsReplay,
    DeadLetterCannotReopen,
    TooManyNotes,
    ConcurrentChange,
}

/// <summary>The answer of a workflow request: the exception as it is now, or why nothing changed.</summary>
internal sealed record WorkflowOutcome(ExceptionItem? Item, WorkflowRejection Rejection, string? Detail)
{
    public static WorkflowOutcome Done(ExceptionItem item) => new(item, WorkflowRejection.None, null);

    public static WorkflowOutcome Refused(WorkflowRejection rejection, string detail, ExceptionItem? item = null) => new(item, rejection, detail);
}

/// <summary>
/// One list of everything that needs a person: the engine's exceptions, channel and ERP dead letters, and the drift
/// exceptions reconciliation raises through <see cref="Raise"/>. Adds workflow state (status, assignee, notes) with an
/// audit trail of every change. A dead letter's resolution is derived from its outbox (replayed or discarded), never stored.
/// </summary>
internal sealed class ExceptionWorkflow
{
    public const string Open = "open";
    public const string Acknowledged = "acknowledged";
    public const string Resolved = "resolved";

    /// <summary>Notes one exception incident may have; more is refused (409), since a page of notes is read whole.</summary>
    public const int NotesPerExceptionMax = 500;

    /// <summary>Audit rows shown on one exception (the newest ones).</summary>
    public const int HistoryRowsShownMax = 1000;

    /// <summary>Attempts of a change that lost a race with a concurrent change before the caller gets a 409.</summary>
    private const int ChangeAttemptsMax = 3;

    /// <summary>The engine's exception types; a drift may not use them, so that a kind names one source.</summary>
    internal static readonly HashSet<string> EngineKinds = new(StringComparer.Ordinal)
    {
        ExceptionTypes.Oversell, ExceptionTypes.NegativeOnHand, ExceptionTypes.Clamp, ExceptionTypes.SequenceGap,
    };

    private readonly AdoJournal _journal;
    private readonly TimeProvider _time;

    /// <summary>The hub's workflow, over the engine's journal.</summary>
    public ExceptionWorkflow(Sequencer engine, TimeProvider time)
        : this(engine.Journal, time)
    {
    }

    /// <summary>A workflow over a journal directly (tests raise drift into a running hub's store this way).</summary>
    internal ExceptionWorkflow(AdoJournal journal, TimeProvider time)
    {
        _journal = journal;
        _time = time;
    }

    private AdoJournal Journal => _journal;

    /// <summary>
    /// Raises an exception for a person from the host (reconciliation raises drift through this). The exception is open,
    /// keyed "drift:{id}", and appears in <c>GET /v1/exceptions</c> and the drift report. Invalid arguments are a bug of
    /// the caller and throw <see cref="ArgumentException"/>.
    /// </summary>
    /// <param name="kind">What it is, e.g. "drift" (an id: 1–64 of [A-Za-z0-9._:-]; not an engine or dead-letter kind).</param>
    /// <param name="sku">The SKU.</param>
    /// <param name="locationId">The location, or null for a channel-wide drift.</param>
    /// <param name="channelId">The channel, or null for a physical drift.</param>
    /// <param name="quantity">The signed difference in units (reported − expected); the report sums it and its absolute value.</param>
    /// <param name="detail">What a person should know (1–1000 characters).</param>
    /// <param name="figures">Optional figures and a dedupe key.</param>
    public RaisedException Raise(string kind, string sku, string? locationId, string? channelId, long quantity, string detail, DriftFigures? figures = null)
    {
        ArgumentNullException.ThrowIfNull(kind);
        ArgumentNullException.ThrowIfNull(sku);
        ArgumentNullException.ThrowIfNull(detail);
        if (!JsonInput.IsId(kind) || EngineKinds.Contains(kind) || kind is AdoJournal.ChannelDeadLetterKind or AdoJournal.ErpDeadLetterKind)
        {
            throw new ArgumentException($"'{kind}' is not a kind a drift exception may have.", nameof(kind));
        }
        if (!JsonInput.IsSku(sku))
        {
            throw new ArgumentException("The SKU must be 1–64 characters without control characters.", nameof(sku));
        }
        if (locationId is not null && !JsonInput.IsId(locationId))
        {
            throw new ArgumentException($"'{locationId}' is not a location id.", nameof(locationId));
        }
        if (channelId is not null && !JsonInput.IsId(channelId))
        {
            throw new ArgumentException($"'{channelId}' is not a channel id.", nameof(channelId));
        }
        if (detail.Length is 0 or > ExceptionLimits.DetailLengthMax)
        {
            throw new ArgumentException($"The detail must be 1–{ExceptionLimits.DetailLengthMax} characters.", nameof(detail));
        }
        figures ??= new DriftFigures();
        if (figures.System is { } system && !JsonInput.IsId(system))
        {
            throw new ArgumentException($"'{system}' is not a system id.", nameof(figures));
        }
        if (figures.Reference is { Length: 0 or > Limits.TextLengthMax } || figures.DedupeKey is { Length: 0 or > Limits.TextLengthMax })
        {
            throw new ArgumentException($"The reference and the dedupe key must be 1–{Limits.TextLengthMax} characters.", nameof(figures));
        }
        var (id, repeated) = Journal.InsertDriftException(new DriftInsert(kind, sku, locationId, channelId, quantity, detail, figures.Expected,
            figures.Reported, figures.System, figures.Reference, figures.DedupeKey, _time.GetUtcNow().ToUnixTimeMilliseconds()));
        return new RaisedException("drift:" + id.ToString(CultureInfo.InvariantCulture), id, repeated);
    }

    /// <summary>
    /// Resolves an exception on behalf of the host (e.g. a later reconciliation run no longer finds the drift), from open
    /// or acknowledged, with a note saying why. Already resolved: nothing changes.
    /// </summary>
    public WorkflowOutcome ResolveBySystem(string key, string actor, string reason)
    {
        if (Find(key) is { Status: Resolved } already)
        {
            return WorkflowOutcome.Done(already);
        }
        var outcome = Change(key, Resolved, assigneeGiven: false, assignee: null, actor, allowDirectResolve: true);
        return outcome.Rejection != WorkflowRejection.None ? outcome : AddNote(key, actor, reason, actor);
    }

    /// <summary>A page of the merged list after <paramref name="position"/>; the next position is null on the last page.</summary>
    public (List<ExceptionItem> Items, ExceptionPosition? Next) List(ExceptionFilter filter, ExceptionPosition position, int limit)
    {
        var fetch = limit + 1;
        var kind = filter.Kind;
        var sources = new List<ExceptionItem>[4];
        sources[(int)ExceptionSource.Engine] = filter.ChannelId is null && kind is not (AdoJournal.ChannelDeadLetterKind or AdoJournal.ErpDeadLetterKind)
            ? Journal.ReadEngineExceptionItems(filter, position.EngineId, null, fetch)
            : [];
        sources[(int)ExceptionSource.Drift] = kind is null || !(EngineKinds.Contains(kind) || kind is AdoJournal.ChannelDeadLetterKind or AdoJournal.ErpDeadLetterKind)
            ? Journal.ReadDriftExceptionItems(filter, position.DriftMs, position.DriftId, null, fetch)
            : [];
        sources[(int)ExceptionSource.Channel] = (kind is null or AdoJournal.ChannelDeadLetterKind) && filter.LocationId is null
            ? Journal.ReadChannelExceptionItems(filter, position.ChannelMs, position.ChannelId, position.ChannelSku, fetch)
            : [];
        sources[(int)ExceptionSource.Erp] = (kind is null or AdoJournal.ErpDeadLetterKind) && filter.ChannelId is null
            ? Journal.ReadErpExceptionItems(filter, position.ErpMs, position.ErpId, null, fetch)
            : [];

        // Each source is already in its own order; the merge takes the earliest head (raised time, then source), so the
        // page holds the first `limit` items of the merged order and each source resumes after what it contributed.
        var heads = new int[4];
        var page = new List<ExceptionItem>(Math.Min(limit, 1024));
        var next = position;
        while (page.Count < limit)
        {
            var best = -1;
            for (var s = 0; s < 4; s++)
            {
                if (heads[s] < sources[s].Count
                    && (best < 0 || sources[s][heads[s]].RaisedAtMs < sources[best][heads[best]].RaisedAtMs))
                {
                    best = s;
                }
            }
            if (best < 0)
            {
                break;
            }
            var item = sources[best][heads[best]++];
            page.Add(item);
            next = item.Source switch
            {
                ExceptionSource.Engine => next with { EngineId = item.RefId },
                ExceptionSource.Drift => next with { DriftMs = item.RaisedAtMs, DriftId = item.RefId },
                ExceptionSource.Channel => next with { ChannelMs = item.RaisedAtMs, ChannelId = item.ChannelId, ChannelSku = item.Sku },
                _ => next with { ErpMs = item.RaisedAtMs, ErpId = item.RefId },
            };
        }
        var more = sources.Sum(s => s.Count) > page.Count;
        return (page, more ? next : null);
    }

    /// <summary>The newest note and note count of each item's incidents, for a page in one query.</summary>
    public Dictionary<string, List<NoteSummary>> NoteSummaries(IReadOnlyList<ExceptionItem> items) =>
        Journal.ReadNoteSummaries(items.Select(i => i.Key).Distinct(StringComparer.Ordinal).ToArray());

    /// <summary>The audit trail of an exception (its newest <see cref="HistoryRowsShownMax"/> rows), oldest first.</summary>
    public List<ExceptionHistoryRow> History(string key) => Journal.ReadExceptionHistory(key, HistoryRowsShownMax);

    /// <summary>Where a list continues after engine exception <paramref name="engineId"/> (a cursor from before the merged list).</summary>
    public ExceptionPosition PositionAfterEngine(long engineId)
    {
        if (Journal.ReadEngineExceptionTime(engineId) is not { } at)
        {
            return ExceptionPosition.Start with { EngineId = engineId };
        }
        // The other sources continue from that millisecond on: at equal times the engine comes first in the merged order.
        var ms = at.ToUnixTimeMilliseconds() - 1;
        return new ExceptionPosition(engineId, ms, long.MaxValue, ms, null, null, ms, long.MaxValue);
    }

    /// <summary>One exception by key, or null.</summary>
    public ExceptionItem? Find(string key)
    {
        var all = new ExceptionFilter(null, null, null, null, null, Open: true, Acknowledged: true, Resolved: true);
        var colon = key.IndexOf(':', StringComparison.Ordinal);
        if (colon <= 0)
        {
            return null;
        }
        var prefix = key[..colon];
        var rest = key[(colon + 1)..];
        if (prefix == "channel")
        {
            // Channel ids may contain ':' themselves, so every split of the rest is a candidate; the first that names
            // a dead letter (or one with workflow state) is the exception.
            for (var i = rest.IndexOf(':', StringComparison.Ordinal); i > 0; i = rest.IndexOf(':', i + 1))
            {
                var channelId = rest[..i];
                var sku = rest[(i + 1)..];
                if (!JsonInput.IsId(channelId) || !JsonInput.IsSku(sku))
                {
                    continue;
                }
                var found = Journal.ReadChannelExceptionItems(all with { ChannelId = channelId, Sku = sku }, long.MinValue, null, null, 1);
                if (found.Count == 1)
                {
                    return found[0];
                }
            }
            return null;
        }
        if (!long.TryParse(rest, NumberStyles.None, CultureInfo.InvariantCulture, out var id) || id <= 0)
        {
            return null;
        }
        var items = prefix switch
        {
            "engine" => Journal.ReadEngineExceptionItems(all, id - 1, id, 1),
            "drift" => Journal.ReadDriftExceptionItems(all, long.MinValue, 0, id, 1),
            "erp" => Journal.ReadErpExceptionItems(all, long.MinValue, 0, id, 1),
            _ => [],
        };
        return items.Count == 1 ? items[0] : null;
    }

    /// <summary>
    /// Changes status and/or assignee. Legal: open → acknowledged → resolved, and resolved → open (reopen); the same status
    /// again changes nothing. A dead letter is resolved by replaying or discarding it, never by hand, and cannot be reopened.
    /// </summary>
    public WorkflowOutcome Change(string key, string? status, bool assigneeGiven, string? assignee, string actor, bool allowDirectResolve = false)
    {
        for (var attempt = 0; attempt < ChangeAttemptsMax; attempt++)
        {
            if (Find(key) is not { } item)
            {
                return WorkflowOutcome.Refused(WorkflowRejection.NotFound, $"There is no exception '{key}'.");
            }
            var toStatus = status ?? item.Status;
            var statusChanges = toStatus != item.Status;
            if (statusChanges && Refuse(item, toStatus, allowDirectResolve) is { } refused)
            {
                return refused;
            }
            var toAssignee = assigneeGiven ? assignee : item.Assignee;
            var assigneeChanges = !string.Equals(toAssignee, item.Assignee, StringComparison.Ordinal);
            if (!statusChanges && !assigneeChanges)
            {
                return WorkflowOutcome.Done(item);
            }
            var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
            var (expectedVersion, storedStatus, resolvedAtMs) = Stored(item);
            if (statusChanges)
            {
                storedStatus = toStatus;
                resolvedAtMs = toStatus == Resolved ? now : null;
            }
            var change = new WorkflowChange(item.Key, item.Source, item.Kind, RefOf(item), ChannelOf(item), SkuOf(item), item.RaisedAtMs,
                expectedVersion, storedStatus, toAssignee, resolvedAtMs, now, actor, "update",
                statusChanges ? item.Status : null, statusChanges ? toStatus : null, assigneeChanges, assigneeChanges ? item.Assignee : null,
                assigneeChanges ? toAssignee : null, null, null);
            if (Journal.ApplyExceptionChange(change))
            {
                return WorkflowOutcome.Done(Find(key) ?? item);
            }
        }
        return WorkflowOutcome.Refused(WorkflowRejection.ConcurrentChange, $"Exception '{key}' was changed by someone else at the same time; read it and try again.");
    }

    /// <summary>Adds a note to the exception's current incident (audited like every change).</summary>
    public WorkflowOutcome AddNote(string key, string author, string text, string actor)
    {
        for (var attempt = 0; attempt < ChangeAttemptsMax; attempt++)
        {
            if (Find(key) is not { } item)
            {
                return WorkflowOutcome.Refused(WorkflowRejection.NotFound, $"There is no exception '{key}'.");
            }
            var notes = Journal.ReadNoteSummaries([key]).GetValueOrDefault(key)?.FirstOrDefault(n => n.RaisedAtMs == item.RaisedAtMs);
            if (notes is { Count: >= NotesPerExceptionMax })
            {
                return WorkflowOutcome.Refused(WorkflowRejection.TooManyNotes,
                    $"Exception '{key}' already has {NotesPerExceptionMax} notes, the most one exception may have.", item);
            }
            var (expectedVersion, storedStatus, resolvedAtMs) = Stored(item);
            var change = new WorkflowChange(item.Key, item.Source, item.Kind, RefOf(item), ChannelOf(item), SkuOf(item), item.RaisedAtMs,
                expectedVersion, storedStatus, item.Assignee, resolvedAtMs, _time.GetUtcNow().ToUnixTimeMilliseconds(), actor, "note",
                null, null, false, null, null, author, text);
            if (Journal.ApplyExceptionChange(change))
            {
                return WorkflowOutcome.Done(Find(key) ?? item);
            }
        }
        return WorkflowOutcome.Refused(WorkflowRejection.ConcurrentChange, $"Exception '{key}' was changed by someone else at the same time; try again.");
    }

    /// <summary>Why a status change is not allowed, or null when it is.</summary>
    private static WorkflowOutcome? Refuse(ExceptionItem item, string to, bool allowDirectResolve)
    {
        if (item.IsDeadLetter && item.Status == Resolved)
        {
            return WorkflowOutcome.Refused(WorkflowRejection.DeadLetterCannotReopen,
                $"Dead letter '{item.Key}' was replayed or discarded, which resolved it; it cannot be reopened. If the publication fails again, that is a new exception.",
                item);
        }
        if (item.IsDeadLetter && to == Resolved)
        {
            return WorkflowOutcome.Refused(WorkflowRejection.DeadLetterNeedsReplay,
                $"Dead letter '{item.Key}' is resolved by replaying or discarding it (see its dead-letter endpoints), not by setting its status.",
                item);
        }
        var legal = (item.Status, to) switch
        {
            (Open, Acknowledged) or (Acknowledged, Resolved) or (Resolved, Open) => true,
            (Open, Resolved) => allowDirectResolve,
            _ => false,
        };
        return legal
            ? null
            : WorkflowOutcome.Refused(WorkflowRejection.IllegalTransition,
                $"Exception '{item.Key}' is {item.Status}; it can go {Allowed(item.Status)}, not to {to}.", item);
    }

    /// <summary>The legal next statuses, in words.</summary>
    internal static string Allowed(string from) => from switch
    {
        Open => "to acknowledged",
        Acknowledged => "to resolved",
        _ => "back to open (reopen)",
    };

    /// <summary>The legal next statuses of an exception in this state (empty for a dead letter that was replayed or discarded).</summary>
    internal static string[] NextStatuses(ExceptionItem item) => item.IsDeadLetter
        ? item.Status == Open ? [Acknowledged] : []
        : item.Status switch
        {
            Open => [Acknowledged],
            Acknowledged => [Resolved],
            _ => [Open],
        };

    /// <summary>
    /// The version a write must find, and the stored status and resolution time to keep. A workflow row of an earlier
    /// incident of a dead letter is replaced: the new incident starts from open.
    /// </summary>
    private static (long ExpectedVersion, string Status, long? ResolvedAtMs) Stored(ExceptionItem item)
    {
        if (item.Row is not { } row)
        {
            return (0, item.Status, null);
        }
        if (row.RaisedAtMs != item.RaisedAtMs)
        {
            return (row.Version, Open, null);
        }
        // A dead letter's "resolved" is derived, so the row keeps the status a person gave it.
        return (row.Version, item.IsDeadLetter ? row.Status : item.Status, row.ResolvedAtMs);
    }

    private static long? RefOf(ExceptionItem item) => item.Source == ExceptionSource.Channel ? null : item.RefId;

    private static string? ChannelOf(ExceptionItem item) => item.Source == ExceptionSource.Channel ? item.ChannelId : null;

    private static string? SkuOf(ExceptionItem item) => item.Source == ExceptionSource.Channel ? item.Sku : null;
}

/// <summary>Limits of the exceptions workflow.</summary>
internal static class ExceptionLimits
{
    /// <summary>Longest detail of a raised exception.</summary>
    public const int DetailLengthMax = 1000;

    /// <summary>Longest note text.</summary>
    public const int NoteTextLengthMax = 2000;

    /// <summary>Longest note author and assignee.</summary>
    public const int PersonLengthMax = 128;

    /// <summary>Largest request body of PATCH and notes.</summary>
    public const int BodyBytesMax = 16 * 1024;
}
