using System.Globalization;
using System.Text;

namespace Truestock.Server.Ingestion;

/// <summary>GET /v1/sources/polling: every configured polling source.</summary>
public sealed record PollingSourcesView(IReadOnlyList<PollingSourceView> Sources);

/// <summary>One polling source: its settings that matter to an operator, where its loop is, and what its polls did.</summary>
/// <param name="SourceId">The source id (the events' source).</param>
/// <param name="Enabled">False when the source is configured but turned off.</param>
/// <param name="Url">The address polled, without its query string.</param>
/// <param name="IntervalSeconds">Time between polls, before jitter.</param>
/// <param name="State">waiting, polling, retrying, standby (this hub is not the writer), disabled or stopped.</param>
/// <param name="NextPollAt">When the loop polls next (or retries), while it waits.</param>
/// <param name="LastPollAt">Start of the latest poll attempt.</param>
/// <param name="LastSuccessAt">End of the latest poll that read every page.</param>
/// <param name="LastErrorAt">End of the latest poll attempt that failed.</param>
/// <param name="LastError">Why it failed.</param>
/// <param name="ConsecutiveFailures">Failed attempts since the last success.</param>
/// <param name="Polls">Poll attempts since the hub started (retries included).</param>
/// <param name="Failures">Of those, the attempts that failed.</param>
/// <param name="ItemsRead">Items read since the hub started.</param>
/// <param name="CountsEmitted">Counted events sent to the engine since the hub started.</param>
/// <param name="LastPoll">The latest poll attempt in detail.</param>
public sealed record PollingSourceView(string SourceId, bool Enabled, string? Url, int IntervalSeconds, string State, DateTimeOffset? NextPollAt,
    DateTimeOffset? LastPollAt, DateTimeOffset? LastSuccessAt, DateTimeOffset? LastErrorAt, string? LastError, int ConsecutiveFailures,
    long Polls, long Failures, long ItemsRead, long CountsEmitted, PollingRunView? LastPoll);

/// <summary>One poll attempt.</summary>
/// <param name="StartedAt">When it started (the hub's clock).</param>
/// <param name="FinishedAt">When it ended; null while it runs.</param>
/// <param name="Outcome">succeeded, malformed, too_large, unauthorized, http_error, timeout, unreachable, engine_unavailable or failed; null while it runs.</param>
/// <param name="Attempt">0 for the scheduled poll, 1… for its retries.</param>
/// <param name="CorrelationId">Given to every event of the poll, so the ledger leads back to it.</param>
/// <param name="Pages">Pages read whole.</param>
/// <param name="ItemsRead">Items in those pages, valid or not.</param>
/// <param name="Unchanged">Items whose onHand equals the hub's: no event.</param>
/// <param name="CountsEmitted">Counted events sent to the engine.</param>
/// <param name="Applied">Counts applied.</param>
/// <param name="Duplicate">Counts the hub had already applied (a re-poll of the same snapshot).</param>
/// <param name="Stale">Counts older than the position's latest count: nothing changed.</param>
/// <param name="Rejected">Counts the engine rejected (listed in <paramref name="ItemErrors"/>).</param>
/// <param name="ItemErrorsTotal">Items skipped or rejected, in all.</param>
/// <param name="ItemErrors">The first of them.</param>
/// <param name="Error">Why the poll failed, when it did.</param>
public sealed record PollingRunView(DateTimeOffset StartedAt, DateTimeOffset? FinishedAt, string? Outcome, int Attempt, string CorrelationId,
    int Pages, long ItemsRead, long Unchanged, long CountsEmitted, long Applied, long Duplicate, long Stale, long Rejected,
    long ItemErrorsTotal, IReadOnlyList<PollingItemErrorView> ItemErrors, string? Error);

/// <summary>An item of a poll that was skipped or rejected.</summary>
/// <param name="Page">The page (1-based).</param>
/// <param name="Index">The item's position in the page (0-based).</param>
/// <param name="Sku">Its SKU, when readable.</param>
/// <param name="Location">Its location code at the source, when readable.</param>
/// <param name="Type">Problem type URI.</param>
/// <param name="Detail">What is wrong.</param>
public sealed record PollingItemErrorView(int Page, int Index, string? Sku, string? Location, string Type, string Detail);

/// <summary>What came of a poll attempt.</summary>
internal enum PollOutcome
{
    /// <summary>Every page was read; item errors and engine rejections do not fail a poll.</summary>
    Succeeded,
    /// <summary>A page broke the wire format (not JSON, a missing asOf, too many items, a repeated cursor).</summary>
    Malformed,
    /// <summary>A page was over ResponseBytesMax, or the source had more than PagesMax pages.</summary>
    TooLarge,
    /// <summary>The source answered 401 or 403.</summary>
    Unauthorized,
    /// <summary>The source answered another non-2xx status.</summary>
    HttpError,
    /// <summary>A page did not arrive within TimeoutSeconds.</summary>
    Timeout,
    /// <summary>The connection failed or broke.</summary>
    Unreachable,
    /// <summary>The engine could not take the counts (queue full, standby, store unreachable).</summary>
    EngineUnavailable,
    /// <summary>An unexpected error (logged in full).</summary>
    Failed,
}

/// <summary>
/// The status of every polling source and the figures behind GET /v1/sources/polling and the
/// <c>truestock_polling_*</c> metrics. Each source's loop writes its own entry; readers copy under its lock.
/// </summary>
internal sealed class PollingSourceBoard
{
    /// <summary>Item errors kept per poll for the status; the total is always counted.</summary>
    public const int ItemErrorsListedMax = 20;

    private static readonly string[] OutcomeNames = Enum.GetValues<PollOutcome>()
        .Select(o => System.Text.RegularExpressions.Regex.Replace(o.ToString(), "(?<=[a-z])([A-Z])", "_$1").ToLowerInvariant()).ToArray();

    private readonly Dictionary<string, Entry> _entries;

    public PollingSourceBoard(IReadOnlyList<PollingSource> sources)
    {
        ArgumentNullException.ThrowIfNull(sources);
        Sources = sources;
        _entries = sources.ToDictionary(s => s.Id, s => new Entry(s), StringComparer.Ordinal);
    }

    /// <summary>Every configured source, checked at start, in id order.</summary>
    public IReadOnlyList<PollingSource> Sources { get; }

    public static string Name(PollOutcome outcome) => OutcomeNames[(int)outcome];

    public Entry this[string sourceId] => _entries[sourceId];

    public PollingSourcesView View() => new(Sources.Select(s => _entries[s.Id].View()).ToArray());

    /// <summary>Appends <c>truestock_polling_polls_total{source,outcome}</c> and <c>truestock_polling_counts_total{source}</c>.</summary>
    public void Render(StringBuilder sb)
    {
        ArgumentNullException.ThrowIfNull(sb);
        if (Sources.Count == 0)
        {
            return;
        }
        sb.Append("# HELP truestock_polling_polls_total Poll attempts of polling sources, by outcome.\n")
          .Append("# TYPE truestock_polling_polls_total counter\n");
        foreach (var source in Sources)
        {
            var entry = _entries[source.Id];
            for (var i = 0; i < OutcomeNames.Length; i++)
            {
                // Source ids are checked ids ([A-Za-z0-9._:-]), so they need no escaping in a label.
                sb.Append("truestock_polling_polls_total{source=\"").Append(source.Id).Append("\",outcome=\"").Append(OutcomeNames[i]).Append("\"} ")
                  .Append(Interlocked.Read(ref entry.PollsByOutcome[i]).ToString(CultureInfo.InvariantCulture)).Append('\n');
            }
        }
        sb.Append("# HELP truestock_polling_counts_total Counted events polling sources sent to the engine (positions that differed).\n")
          .Append("# TYPE truestock_polling_counts_total counter\n");
        foreach (var source in Sources)
        {
            sb.Append("truestock_polling_counts_total{source=\"").Append(source.Id).Append("\"} ")
              .Append(Interlocked.Read(ref _entries[source.Id].CountsEmittedTotal).ToString(CultureInfo.InvariantCulture)).Append('\n');
        }
    }

    /// <summary>One source's status; its loop is the only writer.</summary>
    internal sealed class Entry(PollingSource source)
    {
        private readonly Lock _lock = new();
        private string _state = source.Enabled ? "waiting" : "disabled";
        private DateTimeOffset? _nextPollAt;
        private DateTimeOffset? _lastPollAt;
        private DateTimeOffset? _lastSuccessAt;
        private DateTimeOffset? _lastErrorAt;
        private string? _lastError;
        private int _consecutiveFailures;
        private long _itemsRead;
        private PollRun? _current;

        public readonly long[] PollsByOutcome = new long[OutcomeNames.Length];
        public long CountsEmittedTotal;

        /// <summary>Item errors of the last poll that was logged; only the source's loop uses it.</summary>
        public long ItemErrorsLogged;

        public PollingSource Source { get; } = source;

        public void Waiting(string state, DateTimeOffset? next)
        {
            lock (_lock)
            {
                _state = state;
                _nextPollAt = next;
            }
        }

        public void Started(PollRun run)
        {
            lock (_lock)
            {
                _state = "polling";
                _nextPollAt = null;
                _lastPollAt = run.StartedAt;
                _current = run;
            }
        }

        /// <summary>Records the end of an attempt; the run is no longer written after this.</summary>
        public void Finished(PollRun run)
        {
            lock (_lock)
            {
                _itemsRead += run.ItemsRead;
                if (run.Outcome == PollOutcome.Succeeded)
                {
                    _lastSuccessAt = run.FinishedAt;
                    _consecutiveFailures = 0;
                }
                else
                {
                    _lastErrorAt = run.FinishedAt;
                    _lastError = run.Error;
                    _consecutiveFailures++;
                }
                // Counted under the lock, so a reader that sees the attempt counted also sees its error or success.
                Interlocked.Increment(ref PollsByOutcome[(int)run.Outcome!.Value]);
            }
        }

        public void Stopped()
        {
            lock (_lock)
            {
                _state = "stopped";
                _nextPollAt = null;
            }
        }

        public PollingSourceView View()
        {
            lock (_lock)
            {
                long polls = 0;
                for (var i = 0; i < PollsByOutcome.Length; i++)
                {
                    polls += Interlocked.Read(ref PollsByOutcome[i]);
                }
                var failures = polls - Interlocked.Read(ref PollsByOutcome[(int)PollOutcome.Succeeded]);
                return new PollingSourceView(Source.Id, Source.Enabled, Source.DisplayUrl, (int)Source.Interval.TotalSeconds, _state, _nextPollAt,
                    _lastPollAt, _lastSuccessAt, _lastErrorAt, _lastError, _consecutiveFailures, polls, failures,
                    _itemsRead + (_current is { Outcome: null } running ? running.ItemsRead : 0),
                    Interlocked.Read(ref CountsEmittedTotal), _current?.View());
            }
        }
    }
}

/// <summary>
/// One poll attempt as it runs. Its source's loop writes it and the status reads it at any time, so
/// every member goes through one lock.
/// </summary>
internal sealed class PollRun(DateTimeOffset startedAt, int attempt, string correlationId)
{
    private readonly List<PollingItemErrorView> _errors = [];
    private readonly Lock _lock = new();
    private int _pages;
    private long _itemsRead;
    private long _unchanged;
    private long _countsEmitted;
    private long _applied;
    private long _duplicate;
    private long _stale;
    private long _rejected;
    private long _itemErrorsTotal;
    private DateTimeOffset? _finishedAt;
    private PollOutcome? _outcome;
    private string? _error;

    public DateTimeOffset StartedAt { get; } = startedAt;

    public int Attempt { get; } = attempt;

    public string CorrelationId { get; } = correlationId;

    /// <summary>Whether a failed attempt is worth retrying before the next interval.</summary>
    public bool Retryable { get; private set; }

    /// <summary>How long the source asked the hub to wait (Retry-After), when it did.</summary>
    public TimeSpan? RetryAfter { get; set; }

    public DateTimeOffset? FinishedAt
    {
        get { lock (_lock) { return _finishedAt; } }
    }

    public PollOutcome? Outcome
    {
        get { lock (_lock) { return _outcome; } }
    }

    public string? Error
    {
        get { lock (_lock) { return _error; } }
    }

    public long ItemsRead
    {
        get { lock (_lock) { return _itemsRead; } }
    }

    public long ItemErrorsTotal
    {
        get { lock (_lock) { return _itemErrorsTotal; } }
    }

    public PollingItemErrorView? FirstItemError
    {
        get { lock (_lock) { return _errors.Count > 0 ? _errors[0] : null; } }
    }

    /// <summary>A page was read whole and its items decided.</summary>
    public void PageRead(int items, long unchanged)
    {
        lock (_lock)
        {
            _pages++;
            _itemsRead += items;
            _unchanged += unchanged;
        }
    }

    /// <summary>A batch of counts was decided by the engine.</summary>
    public void Decided(int emitted, int applied, int duplicate, int stale, int rejected)
    {
        lock (_lock)
        {
            _countsEmitted += emitted;
            _applied += applied;
            _duplicate += duplicate;
            _stale += stale;
            _rejected += rejected;
        }
    }

    public void ItemError(int page, PolledItemError error)
    {
        lock (_lock)
        {
            _itemErrorsTotal++;
            if (_errors.Count < PollingSourceBoard.ItemErrorsListedMax)
            {
                _errors.Add(new PollingItemErrorView(page, error.Index, error.Sku, error.Location, Http.Problems.TypeBase + error.Type, error.Detail));
            }
        }
    }

    public void End(DateTimeOffset at, PollOutcome outcome, string? error, bool retryable)
    {
        lock (_lock)
        {
            _finishedAt = at;
            _outcome = outcome;
            _error = error;
            Retryable = retryable;
        }
    }

    public PollingRunView View()
    {
        lock (_lock)
        {
            return new PollingRunView(StartedAt, _finishedAt, _outcome is { } o ? PollingSourceBoard.Name(o) : null, Attempt, CorrelationId,
                _pages, _itemsRead, _unchanged, _countsEmitted, _applied, _duplicate, _stale, _rejected, _itemErrorsTotal, _errors.ToArray(), _error);
        }
    }
}
