using System.Globalization;
using System.Text;
using Microsoft.Extensions.Options;
using Truestock.Connectors;
using Truestock.Connectors.Erp;
using Truestock.Server.Engine;
using Truestock.Server.Storage;

namespace Truestock.Server.Erp;

/// <summary>
/// Posts every stock movement of the ledger to the ERP. The engine queues each movement in the durable outbox in its
/// batch transaction (see <see cref="AdoJournal.ErpPostingEnabled"/>); this service, on the writer hub only, reads what
/// is due in ledger order, posts it in batches through the ERP connector with up to <see cref="ErpOptions.ConcurrencyMax"/>
/// batches in flight, and records each batch's answers in one transaction: posted (with the ERP's document id), retry
/// later with capped exponential backoff and jitter, or dead letter. The movement's key (<c>eventId:locationId</c>) makes
/// a repeat harmless, so a crash between the ERP's booking and the hub's record books nothing twice. While the ERP is
/// slow or down, postings wait in the outbox and the rest of the hub is untouched.
/// </summary>
internal sealed class ErpPoster : BackgroundService
{
    private const int FailurePauseMilliseconds = 30_000;
    private const int CountsRefreshMilliseconds = 1_000;

    private readonly Sequencer _engine;
    private readonly TimeProvider _time;
    private readonly ErpOptions _options;
    private readonly ErpSettings _settings;
    private readonly IConfiguration _configuration;
    private readonly ILogger<ErpPoster> _log;
    private readonly Random _jitter = new();
    private long _pausedUntilMs;
    private int _outages;
    private long _countsRefreshedAt = -CountsRefreshMilliseconds;

    public ErpPoster(Sequencer engine, TimeProvider time, IOptions<ErpOptions> options, IConfiguration configuration, ILogger<ErpPoster> log)
    {
        _engine = engine;
        _time = time;
        _options = options.Value;
        _settings = _options.ToSettings();
        _configuration = configuration;
        _log = log;
        // Hosted services are all constructed before the first one starts, so the journal queues movements from the
        // very first batch the engine writes, on whichever hub becomes the writer.
        engine.Journal.ErpPostingEnabled = true;
    }

    /// <summary>The ERP kind (rest, odoo).</summary>
    public string Kind => _settings.Kind;

    /// <summary>Live figures, for metrics and the status API.</summary>
    public ErpStats Stats { get; } = new();

    /// <summary>True while this hub is the writer and so the one that posts.</summary>
    public bool Posting => _engine.Role == EngineRole.Writer;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var http = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
        {
            // The connector applies its own per-request time limit.
            Timeout = Timeout.InfiniteTimeSpan,
        };
        // Rate limits and timeouts are real time, like the channel connectors', whatever clock the hub decides with.
        var connector = ErpConnectorFactory.Create(_settings, new ErpContext(http, TimeProvider.System, Credential));
        Stats.Counters = connector.Counters;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                var settled = 0;
                try
                {
                    var role = _engine.Role;
                    if (role == EngineRole.Writer)
                    {
                        settled = await PostRound(connector, stoppingToken).ConfigureAwait(false);
                    }
                    if (role != EngineRole.Recovering)
                    {
                        RefreshCounts(force: settled > 0);
                    }
                }
                catch (Exception ex) when (ex is System.Data.Common.DbException or IOException)
                {
                    // The store is briefly unavailable (failover, restart): nothing was recorded that did not happen,
                    // and whatever the ERP booked meanwhile is found again by its key, so the loop simply tries again.
                    _log.LogWarning("ERP posting paused ({Message}); retrying.", ex.Message);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // A bug or an unexpected failure: logged in full and shown in the status, then the loop pauses
                    // before it tries again, so that a persistent fault does not flood the log.
                    Stats.LastError = ex.Message;
                    _log.LogError(ex, "ERP posting failed; it resumes in {Seconds} s.", FailurePauseMilliseconds / 1000);
                    await Task.Delay(FailurePauseMilliseconds, stoppingToken).ConfigureAwait(false);
                }
                if (settled == 0)
                {
                    await Task.Delay(_options.PollMilliseconds, stoppingToken).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down: pending rows stay pending for the next start or the next writer.
        }
        finally
        {
            await connector.DisposeAsync().ConfigureAwait(false);
            http.Dispose();
        }
    }

    /// <summary>
    /// Reads up to a batch per concurrency slot of due postings, posts the batches side by side and records each one's
    /// answers. Returns how many rows it settled (posted, skipped, retried or dead-lettered).
    /// </summary>
    private async Task<int> PostRound(IErpConnector connector, CancellationToken token)
    {
        var nowMs = _time.GetUtcNow().ToUnixTimeMilliseconds();
        if (nowMs < Interlocked.Read(ref _pausedUntilMs))
        {
            return 0;
        }
        var due = _engine.Journal.ReadErpPending(nowMs, connector.BatchSizeMax * _options.ConcurrencyMax);
        if (due.Count == 0)
        {
            return 0;
        }
        // A ledger row without an on-hand change (the destination row of a transfer, a count that found what was
        // expected, an inspection that restocked) has nothing to book: it is settled without a call.
        var skipped = due.Where(p => p.OnHandDelta == 0)
            .Select(p => new AdoJournal.ErpResult(p.LedgerId, AdoJournal.ErpStatus.Skipped, null, null, 0)).ToList();
        _engine.Journal.RecordErpResults(skipped, nowMs);
        Interlocked.Add(ref Stats.Skipped, skipped.Count);

        var batches = due.Where(p => p.OnHandDelta != 0).Chunk(connector.BatchSizeMax).ToList();
        var outcomes = await Task.WhenAll(batches.Select(b => PostBatch(connector, b, token))).ConfigureAwait(false);
        var transient = outcomes.Sum(o => o.Transient);
        var total = outcomes.Sum(o => o.Total);
        if (total > 0 && transient == total)
        {
            // Every posting of the round failed transiently: the ERP is down or throttling hard. New postings wait as
            // long as the retries do (exponential, capped, without jitter), so the hub does not hammer an ERP that
            // cannot answer; the retries themselves are due at their own jittered times.
            _outages = Math.Min(_outages + 1, 30);
            var pause = Math.Min(_options.BackoffSecondsMax * 1000.0, 1000.0 * Math.Pow(2, _outages - 1));
            Interlocked.Exchange(ref _pausedUntilMs, _time.GetUtcNow().ToUnixTimeMilliseconds() + (long)pause);
        }
        else if (total > transient)
        {
            _outages = 0;
        }
        return due.Count;
    }

    private async Task<(int Total, int Transient)> PostBatch(IErpConnector connector, PendingErpPosting[] batch, CancellationToken token)
    {
        var movements = batch.Select(p => new ErpMovement($"{p.EventId}:{p.LocationId}", p.EventId, p.Sku, p.LocationId, p.Type, p.Quantity,
            p.OnHandDelta, p.OnHandAfter, p.OccurredAt, p.Source)).ToList();
        var outcomes = await connector.PostAsync(movements, token).ConfigureAwait(false);
        var byKey = outcomes.ToDictionary(o => o.Key, StringComparer.Ordinal);
        var doneMs = _time.GetUtcNow().ToUnixTimeMilliseconds();
        var results = new List<AdoJournal.ErpResult>(batch.Length);
        var transient = 0;
        var deadLettered = 0;
        (long LedgerId, string Key, string? Error)? firstDead = null;
        for (var i = 0; i < batch.Length; i++)
        {
            var row = batch[i];
            var outcome = byKey.GetValueOrDefault(movements[i].Key)
                ?? new ErpPostOutcome(movements[i].Key, ErpPostStatus.Transient, Error: "The connector returned no outcome for this movement.");
            switch (outcome.Status)
            {
                case ErpPostStatus.Posted:
                    results.Add(new AdoJournal.ErpResult(row.LedgerId, AdoJournal.ErpStatus.Posted, outcome.DocumentId, null, 0));
                    Interlocked.Increment(ref Stats.Posted);
                    break;
                case ErpPostStatus.Transient when row.Attempts + 1 < _options.AttemptsMax:
                    transient++;
                    var delay = Backoff.Delay(row.Attempts + 1, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(_options.BackoffSecondsMax), _jitter);
                    results.Add(new AdoJournal.ErpResult(row.LedgerId, AdoJournal.ErpStatus.Pending, null, Bound(outcome.Error),
                        doneMs + (long)Math.Max(1, delay.TotalMilliseconds)));
                    Interlocked.Increment(ref Stats.Retried);
                    Stats.LastError = Bound(outcome.Error);
                    break;
                default:
                    if (outcome.Status == ErpPostStatus.Transient)
                    {
                        transient++;
                    }
                    var reason = outcome.Status == ErpPostStatus.Permanent
                        ? Bound(outcome.Error)
                        : Bound(string.Create(CultureInfo.InvariantCulture, $"Gave up after {_options.AttemptsMax} attempts: {outcome.Error}"));
                    results.Add(new AdoJournal.ErpResult(row.LedgerId, AdoJournal.ErpStatus.Dead, null, reason, 0));
                    Interlocked.Increment(ref Stats.DeadLettered);
                    Stats.LastError = reason;
                    deadLettered++;
                    firstDead ??= (row.LedgerId, movements[i].Key, reason);
                    break;
            }
        }
        _engine.Journal.RecordErpResults(results, doneMs);
        if (firstDead is { } d)
        {
            // One line per batch: a missing credential would otherwise log every movement of the backlog.
            _log.LogWarning("ERP posting: {Count} movement(s) dead-lettered, the first ledger row {LedgerId} ({Key}): {Error}",
                deadLettered, d.LedgerId, d.Key, d.Error);
        }
        return (batch.Length, transient);
    }

    /// <summary>Refreshes the backlog figures at most once a second (at once after a round that settled rows).</summary>
    private void RefreshCounts(bool force)
    {
        var now = Environment.TickCount64;
        if (!force && now - _countsRefreshedAt < CountsRefreshMilliseconds)
        {
            return;
        }
        _countsRefreshedAt = now;
        var nowMs = _time.GetUtcNow().ToUnixTimeMilliseconds();
        var counts = _engine.Journal.ReadErpCounts(nowMs);
        Interlocked.Exchange(ref Stats.Backlog, counts.Pending);
        Interlocked.Exchange(ref Stats.DeadLetters, counts.Dead);
        Stats.OldestPendingSeconds = counts.OldestPendingMs is { } oldest ? Math.Max(0, nowMs - oldest) / 1000.0 : 0;
    }

    private string? Credential(string name)
    {
        // Configuration includes the environment (Truestock__Credentials__erp__apiKey), so secrets live in the
        // deployment, never in the repository, and are never logged.
        var value = _configuration[$"Truestock:Credentials:{_settings.CredentialSet}:{name}"];
        return string.IsNullOrEmpty(value) ? null : value;
    }

    private static string? Bound(string? error) => error is { Length: > 1000 } ? error[..1000] : error;

    /// <summary>Appends the ERP metrics in the Prometheus text format.</summary>
    public void RenderMetrics(StringBuilder sb)
    {
        var labels = $"kind=\"{Kind}\"";
        Metric(sb, "truestock_erp_backlog", "gauge", "Stock movements waiting to be posted to the ERP.", labels, Interlocked.Read(ref Stats.Backlog));
        sb.Append("# HELP truestock_erp_oldest_pending_seconds Age of the oldest movement the ERP has not booked.\n")
          .Append("# TYPE truestock_erp_oldest_pending_seconds gauge\n")
          .Append("truestock_erp_oldest_pending_seconds{").Append(labels).Append("} ")
          .Append(Stats.OldestPendingSeconds.ToString(CultureInfo.InvariantCulture)).Append('\n');
        Metric(sb, "truestock_erp_dead_letters", "gauge", "ERP postings in the dead-letter list.", labels, Interlocked.Read(ref Stats.DeadLetters));
        sb.Append("# HELP truestock_erp_postings_total ERP postings by outcome: posted, skipped (nothing to book), retried, dead_lettered.\n")
          .Append("# TYPE truestock_erp_postings_total counter\n");
        foreach (var (outcome, value) in new[]
                 {
                     ("posted", Interlocked.Read(ref Stats.Posted)), ("skipped", Interlocked.Read(ref Stats.Skipped)),
                     ("retried", Interlocked.Read(ref Stats.Retried)), ("dead_lettered", Interlocked.Read(ref Stats.DeadLettered)),
                 })
        {
            sb.Append("truestock_erp_postings_total{").Append(labels).Append(",outcome=\"").Append(outcome).Append("\"} ")
              .Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }
        Metric(sb, "truestock_erp_calls_total", "counter", "HTTP calls made to the ERP.", labels, Interlocked.Read(ref Stats.Counters.Calls));
        Metric(sb, "truestock_erp_throttles_total", "counter", "ERP answers that were throttle signals (429).", labels, Interlocked.Read(ref Stats.Counters.Throttles));
        Metric(sb, "truestock_erp_failures_total", "counter", "Failed calls to the ERP (transport errors, 5xx, other 4xx).", labels,
            Interlocked.Read(ref Stats.Counters.Failures));
    }

    private static void Metric(StringBuilder sb, string name, string type, string help, string labels, long value) =>
        sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n')
          .Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n')
          .Append(name).Append('{').Append(labels).Append("} ").Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');
}

/// <summary>Live figures of ERP posting (read with <see cref="Interlocked"/>).</summary>
internal sealed class ErpStats
{
    public ConnectorCounters Counters { get; set; } = new();
    public long Posted;
    public long Skipped;
    public long Retried;
    public long DeadLettered;
    public long Backlog;
    public long DeadLetters;
    public double OldestPendingSeconds;
    public string? LastError;
}
