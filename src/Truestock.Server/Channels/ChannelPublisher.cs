using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Truestock.Connectors;
using Truestock.Core;
using Truestock.Server.Engine;
using Truestock.Server.Storage;

namespace Truestock.Server.Channels;

/// <summary>Live publication figures of one channel, for metrics and the sync status API.</summary>
internal sealed class ChannelSyncStats(string channelId, string kind)
{
    public string ChannelId { get; } = channelId;
    public string Kind { get; } = kind;
    public ConnectorCounters Counters { get; set; } = new();
    public HubMetrics.Histogram Latency { get; } = new([0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900]);
    public long Published;
    public long Retried;
    public long DeadLettered;
    public long Backlog;
    public long DeadLetters;
    public double OldestPendingSeconds;
    public DegradationBuffer Degradation;
    public ChannelVelocity? Velocity;
    public string? LastError;
}

/// <summary>
/// Publishes every change of a connected channel's ATS to the channel. The engine writes the
/// latest ATS per (channel, SKU) to the durable outbox in its batch transaction; one worker per
/// channel reads what is pending (urgent first), hands it to the channel's connector (which keeps
/// to the channel's rate limits), and records the answers: acknowledged, retry later with capped
/// exponential backoff, or dead letter. Only the writer hub publishes. A crash loses nothing: what
/// was not acknowledged is still pending on restart, and republishing a value is harmless.
/// </summary>
internal sealed class ChannelPublisher : BackgroundService
{
    private readonly Sequencer _engine;
    private readonly SyncSignal _signal;
    private readonly TimeProvider _time;
    private readonly HubOptions _options;
    private readonly IConfiguration _configuration;
    private readonly ILogger<ChannelPublisher> _log;
    private readonly HttpClient _http;
    private readonly Dictionary<string, Worker> _workers = new(StringComparer.Ordinal);
    private const int WorkerRestartMilliseconds = 30_000;

    public ChannelPublisher(Sequencer engine, SyncSignal signal, TimeProvider time, IOptions<HubOptions> options,
        IConfiguration configuration, HubMetrics metrics, ILogger<ChannelPublisher> log)
    {
        _engine = engine;
        _signal = signal;
        _time = time;
        _options = options.Value;
        _configuration = configuration;
        _log = log;
        _http = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
        {
            Timeout = TimeSpan.FromSeconds(_options.ChannelHttpTimeoutSeconds),
        };
        metrics.ChannelStats = () => Stats.Values;
    }

    /// <summary>Per-channel figures of the channels this hub publishes to.</summary>
    public ConcurrentDictionary<string, ChannelSyncStats> Stats { get; } = new(StringComparer.Ordinal);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                var wake = _signal.Current;
                await ReconcileWorkers(stoppingToken).ConfigureAwait(false);
                await Task.WhenAny(wake, Task.Delay(TimeSpan.FromMilliseconds(_options.ChannelPollMilliseconds), stoppingToken)).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down: workers are stopped below.
        }
        finally
        {
            foreach (var worker in _workers.Values)
            {
                await worker.StopAsync().ConfigureAwait(false);
            }
            _workers.Clear();
            _http.Dispose();
        }
    }

    /// <summary>Starts, replaces and stops workers so that there is one per connected channel while this hub writes.</summary>
    private async Task ReconcileWorkers(CancellationToken stoppingToken)
    {
        var channels = _engine.Role == EngineRole.Writer ? _engine.ConnectedChannels : [];
        var nowMs = _time.GetUtcNow().ToUnixTimeMilliseconds();
        foreach (var (id, worker) in _workers.ToList())
        {
            var current = channels.FirstOrDefault(c => c.Id == id);
            // A worker that stopped on an error (a missing credential, a bug) is restarted after a
            // pause, so that a fixed configuration is picked up without flooding the log.
            var failed = worker.FailedAtMs is { } at && nowMs - at >= WorkerRestartMilliseconds;
            if (failed || current is null || current.ConnectorJson != worker.Channel.ConnectorJson || !current.Locations.SequenceEqual(worker.Channel.Locations))
            {
                await worker.StopAsync().ConfigureAwait(false);
                _workers.Remove(id);
                if (current is null)
                {
                    Stats.TryRemove(id, out _);
                }
            }
        }
        foreach (var channel in channels)
        {
            if (_workers.ContainsKey(channel.Id))
            {
                continue;
            }
            var worker = new Worker(this, channel, stoppingToken);
            _workers[channel.Id] = worker;
            worker.Start();
        }
    }

    private string? Credential(string set, string name)
    {
        // Configuration includes the environment (Truestock__Credentials__set__name), so secrets
        // live in the deployment, never in the channel's JSON or the repository.
        var value = _configuration[$"Truestock:Credentials:{set}:{name}"];
        return string.IsNullOrEmpty(value) ? null : value;
    }

    /// <summary>One channel's publication loop.</summary>
    private sealed class Worker
    {
        private readonly ChannelPublisher _owner;
        private readonly CancellationTokenSource _stop;
        private readonly ChannelSyncSettings _settings;
        private readonly ChannelSyncStats _stats;
        private readonly Random _jitter = new();
        private IChannelConnector? _connector;
        private Task _run = Task.CompletedTask;
        private long? _lastHealthMs;
        private long? _lastVelocityMs;
        private readonly double[] _latencies = new double[LatencySamplesMax];
        private int _latencyCount;
        private int _latencyNext;
        private const int LatencySamplesMax = 512;
        private const int LatencySamplesMin = 20;
        private const int VelocityUpdateSecondsMin = 300;

        public Worker(ChannelPublisher owner, Channel channel, CancellationToken stoppingToken)
        {
            _owner = owner;
            Channel = channel;
            _stop = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
            _settings = ChannelSyncSettings.Parse(channel.ConnectorJson!);
            using var doc = JsonDocument.Parse(channel.ConnectorJson!);
            var kind = doc.RootElement.GetProperty("kind").GetString()!;
            _stats = owner.Stats.GetOrAdd(channel.Id, id => new ChannelSyncStats(id, kind));
        }

        public Channel Channel { get; }

        /// <summary>When the worker stopped on an error, or null while it runs.</summary>
        public long? FailedAtMs { get; private set; }

        public void Start() => _run = Task.Run(RunAsync);

        public async Task StopAsync()
        {
            await _stop.CancelAsync().ConfigureAwait(false);
            await _run.ConfigureAwait(false);
            _stop.Dispose();
        }

        private AdoJournal Journal => _owner._engine.Journal;

        private async Task RunAsync()
        {
            var token = _stop.Token;
            try
            {
                using (var doc = JsonDocument.Parse(Channel.ConnectorJson!))
                {
                    var set = doc.RootElement.TryGetProperty("credentials", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString()! : Channel.Id;
                    _connector = ConnectorFactory.Create(doc.RootElement, new ConnectorContext(Channel.Id, _owner._http, TimeProvider.System,
                        name => _owner.Credential(set, name)));
                }
                _stats.Counters = _connector.Counters;
                (_stats.Degradation, _stats.Velocity) = await _owner._engine.Read((shard, _) => (shard.DegradationOf(Channel.Id), shard.VelocityOf(Channel.Id))).ConfigureAwait(false);
                while (!token.IsCancellationRequested)
                {
                    var wake = _owner._signal.Current;
                    int published;
                    try
                    {
                        await CheckHealth(token).ConfigureAwait(false);
                        await CheckVelocity(token).ConfigureAwait(false);
                        published = await PublishOnce(token).ConfigureAwait(false);
                    }
                    catch (Exception ex) when (ex is System.Data.Common.DbException or EngineUnavailableException or IOException)
                    {
                        // The store or engine is briefly unavailable (failover, restart): nothing was
                        // acknowledged that is not recorded, so the loop simply tries again.
                        _owner._log.LogWarning("Channel {Channel}: publication paused ({Message}); retrying.", Channel.Id, ex.Message);
                        published = 0;
                    }
                    if (published == 0)
                    {
                        await Task.WhenAny(wake, Task.Delay(TimeSpan.FromMilliseconds(_owner._options.ChannelPollMilliseconds), token)).ConfigureAwait(false);
                    }
                }
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                // Stopped: pending rows stay pending for the next writer or start.
            }
            catch (Exception ex)
            {
                // Logged in full and surfaced in the sync status; the owner restarts the worker later.
                _stats.LastError = ex.Message;
                FailedAtMs = _owner._time.GetUtcNow().ToUnixTimeMilliseconds();
                _owner._log.LogError(ex, "Channel {Channel}: the publisher stopped on an error; it restarts in {Seconds} s.",
                    Channel.Id, WorkerRestartMilliseconds / 1000);
            }
            finally
            {
                if (_connector is not null)
                {
                    await _connector.DisposeAsync().ConfigureAwait(false);
                }
            }
        }

        /// <summary>Publishes one batch of due changes; returns how many rows it settled.</summary>
        private async Task<int> PublishOnce(CancellationToken token)
        {
            var connector = _connector!;
            var nowMs = _owner._time.GetUtcNow().ToUnixTimeMilliseconds();
            var pending = Journal.ReadPending(Channel.Id, _settings.LowStockThreshold, nowMs, connector.BatchSizeMax);
            if (pending.Count == 0)
            {
                return 0;
            }
            var results = new List<AdoJournal.SyncResult>(pending.Count);
            var updates = new List<AtsUpdate>(pending.Count);
            foreach (var p in pending)
            {
                // Even when the ATS came back to the value last acknowledged, it is sent again: an
                // attempt since that acknowledgement (a timeout, or a crash before its answer was
                // recorded) may have left another value at the channel, and only a call makes sure.
                var urgent = p.Ats <= _settings.LowStockThreshold && (p.PublishedAts is null || p.Ats < p.PublishedAts);
                updates.Add(new AtsUpdate(p.Sku, p.Ats, p.Version, urgent));
            }
            IReadOnlyList<PublishOutcome> outcomes = [];
            if (updates.Count > 0)
            {
                outcomes = await connector.PublishAsync(updates, token).ConfigureAwait(false);
            }
            var bySku = pending.ToDictionary(p => p.Sku, StringComparer.Ordinal);
            var answers = new Dictionary<string, PublishOutcome>(outcomes.Count, StringComparer.Ordinal);
            foreach (var o in outcomes)
            {
                answers[o.Sku] = o;
            }
            var doneMs = _owner._time.GetUtcNow().ToUnixTimeMilliseconds();
            foreach (var update in updates)
            {
                // An outcome for another version of the SKU does not answer this update: it is retried.
                var outcome = answers.TryGetValue(update.Sku, out var answer) && answer.Version == update.Version
                    ? answer
                    : new PublishOutcome(update.Sku, update.Version, PublishStatus.Transient, "The connector returned no outcome for this update.");
                var row = bySku[update.Sku];
                switch (outcome.Status)
                {
                    case PublishStatus.Accepted:
                        results.Add(new AdoJournal.SyncResult(update.Sku, update.Quantity, update.Version, AdoJournal.SyncResultKind.Published, null, 0));
                        var latency = Math.Max(0, doneMs - row.ChangedAtMs) / 1000.0;
                        _stats.Latency.Observe(latency);
                        _latencies[_latencyNext] = latency;
                        _latencyNext = (_latencyNext + 1) % LatencySamplesMax;
                        _latencyCount = Math.Min(_latencyCount + 1, LatencySamplesMax);
                        Interlocked.Increment(ref _stats.Published);
                        break;
                    case PublishStatus.Transient when row.Attempts + 1 < _settings.AttemptsMax:
                        var delay = Backoff.Delay(row.Attempts + 1, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(_settings.BackoffSecondsMax), _jitter);
                        results.Add(new AdoJournal.SyncResult(update.Sku, update.Quantity, update.Version, AdoJournal.SyncResultKind.Retry,
                            Bound(outcome.Error), doneMs + (long)Math.Max(1, delay.TotalMilliseconds)));
                        Interlocked.Increment(ref _stats.Retried);
                        _stats.LastError = Bound(outcome.Error);
                        break;
                    default:
                        var reason = outcome.Status == PublishStatus.Permanent
                            ? Bound(outcome.Error)
                            : Bound($"Gave up after {_settings.AttemptsMax} attempts: {outcome.Error}");
                        results.Add(new AdoJournal.SyncResult(update.Sku, update.Quantity, update.Version, AdoJournal.SyncResultKind.Dead, reason, 0));
                        Interlocked.Increment(ref _stats.DeadLettered);
                        _stats.LastError = reason;
                        _owner._log.LogWarning("Channel {Channel}: SKU {Sku} dead-lettered: {Error}", Channel.Id, update.Sku, reason);
                        break;
                }
            }
            Journal.RecordPublications(Channel.Id, results, doneMs, nowMs);
            return results.Count;
        }

        /// <summary>
        /// At most once a second: refreshes backlog figures and applies or lifts the channel's
        /// degradation buffer when its thresholds are crossed. The change goes through the engine
        /// as a journaled command, so ATS (for publication and for reservations) follows it exactly.
        /// </summary>
        private async Task CheckHealth(CancellationToken token)
        {
            var nowMs = _owner._time.GetUtcNow().ToUnixTimeMilliseconds();
            if (_lastHealthMs is { } last && nowMs - last < 1000 && nowMs >= last)
            {
                return;
            }
            _lastHealthMs = nowMs;
            var counts = Journal.ReadSyncCounts(Channel.Id, nowMs);
            var lagSeconds = counts.OldestPendingMs is { } oldest ? Math.Max(0, nowMs - oldest) / 1000.0 : 0;
            Interlocked.Exchange(ref _stats.Backlog, counts.Pending);
            Interlocked.Exchange(ref _stats.DeadLetters, counts.Dead);
            _stats.OldestPendingSeconds = lagSeconds;
            if (_settings.Degradation is not { } d)
            {
                if (!_stats.Degradation.IsNone)
                {
                    // Degradation was configured before and is not any more: lift what is applied.
                    await SetDegradation(DegradationBuffer.None, "degradation is no longer configured", token).ConfigureAwait(false);
                }
                return;
            }
            if (_stats.Degradation.IsNone && d.IsOver(counts.Pending, lagSeconds))
            {
                await SetDegradation(new DegradationBuffer(d.BufferUnits, d.BufferPercent),
                    $"backlog {counts.Pending} (max {d.BacklogMax}), oldest pending {lagSeconds:F0} s (max {d.LagSecondsMax} s)", token).ConfigureAwait(false);
            }
            else if (!_stats.Degradation.IsNone && d.IsHealthy(counts.Pending, lagSeconds))
            {
                await SetDegradation(DegradationBuffer.None, $"healthy again: backlog {counts.Pending}, oldest pending {lagSeconds:F0} s", token).ConfigureAwait(false);
            }
        }

        /// <summary>
        /// Keeps the engine's velocity-buffer settings for this channel in line with the channel's
        /// configuration and its measured p95 propagation delay. Updates are journaled commands (so
        /// replay gives the same ATS) and happen at most every few minutes, and only when the delay
        /// moved by more than a quarter, because each one recomputes the ATS of every SKU of the channel.
        /// </summary>
        private async Task CheckVelocity(CancellationToken token)
        {
            var nowMs = _owner._time.GetUtcNow().ToUnixTimeMilliseconds();
            var current = _stats.Velocity;
            if (_settings.Velocity is not { } v)
            {
                if (current is not null)
                {
                    await SetVelocity(new ChannelVelocity(Channel.Id, 0, 0), token).ConfigureAwait(false);
                }
                return;
            }
            if (current is null || current.MaxUnits != v.MaxUnits)
            {
                var delay = _latencyCount >= LatencySamplesMin ? P95() : current?.DelaySeconds ?? v.DelaySecondsInitial;
                await SetVelocity(new ChannelVelocity(Channel.Id, Math.Max(delay, 0.001), v.MaxUnits), token).ConfigureAwait(false);
                _lastVelocityMs = nowMs;
                return;
            }
            if (_latencyCount < LatencySamplesMin
                || (_lastVelocityMs is { } last && nowMs - last < VelocityUpdateSecondsMin * 1000L && nowMs >= last))
            {
                return;
            }
            var p95 = Math.Max(P95(), 0.001);
            if (Math.Abs(p95 - current.DelaySeconds) > current.DelaySeconds / 4)
            {
                await SetVelocity(new ChannelVelocity(Channel.Id, Math.Round(p95, 3), v.MaxUnits), token).ConfigureAwait(false);
                _lastVelocityMs = nowMs;
            }
        }

        private double P95()
        {
            var sorted = _latencies.AsSpan(0, _latencyCount).ToArray();
            Array.Sort(sorted);
            return sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(sorted.Length * 0.95) - 1)];
        }

        private async Task SetVelocity(ChannelVelocity change, CancellationToken token)
        {
            token.ThrowIfCancellationRequested();
            var outcome = await _owner._engine.Submit(new Work<ChannelVelocity, MasterDataOutcome>(CommandKinds.SetVelocity, change,
                static (shard, c, _, _) => shard.SetVelocity(c), static o => o.Result != MasterDataResult.Rejected)).ConfigureAwait(false);
            if (outcome.Result == MasterDataResult.Rejected)
            {
                throw new InvalidOperationException($"The engine refused a velocity-buffer change for channel {Channel.Id}: {outcome.ErrorDetail}");
            }
            _stats.Velocity = change.DelaySeconds > 0 ? change : null;
            _owner._log.LogInformation("Channel {Channel}: velocity buffer {State}.", Channel.Id,
                change.DelaySeconds > 0 ? $"propagation delay {change.DelaySeconds:F3} s, at most {change.MaxUnits} units" : "off");
        }

        private async Task SetDegradation(DegradationBuffer buffer, string reason, CancellationToken token)
        {
            token.ThrowIfCancellationRequested();
            var change = new ChannelDegradation(Channel.Id, buffer.Units, buffer.Percent, reason);
            var outcome = await _owner._engine.Submit(new Work<ChannelDegradation, MasterDataOutcome>(CommandKinds.SetDegradation, change,
                static (shard, c, _, _) => shard.SetDegradation(c), static o => o.Result != MasterDataResult.Rejected)).ConfigureAwait(false);
            if (outcome.Result == MasterDataResult.Rejected)
            {
                throw new InvalidOperationException($"The engine refused a degradation change for channel {Channel.Id}: {outcome.ErrorDetail}");
            }
            _stats.Degradation = buffer;
            _owner._log.LogWarning("Channel {Channel}: degradation buffer {State} ({Reason}).", Channel.Id,
                buffer.IsNone ? "lifted" : $"applied: {buffer.Units} units + {buffer.Percent} %", reason);
        }

        private static string? Bound(string? error) => error is { Length: > 1000 } ? error[..1000] : error;
    }
}
