using System.Buffers;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Truestock.Connectors;
using Truestock.Core;
using Truestock.Server.Engine;
using Truestock.Server.Http;

namespace Truestock.Server.Ingestion;

/// <summary>
/// Polls the stock levels of sources that publish no events (docs/ingestion.md, "Polling sources").
/// One loop per source, so polls of one source never overlap; loops run only while this hub is the
/// writer. Each poll reads every page of the source, compares each item's onHand with the hub's
/// onHand now, and sends a <c>counted</c> event, as of the source's own timestamp, for each position
/// that differs. The count ordering of the engine then places the count among the movements around
/// it, and the event id derived from (source, timestamp, SKU, location) makes a re-poll of the same
/// snapshot a duplicate.
/// </summary>
internal sealed class PollingService : BackgroundService
{
    /// <summary>Longest wait of a standby hub before it looks again whether it became the writer.</summary>
    private const int StandbyRecheckSecondsMax = 10;

    /// <summary>Bounds of the first poll after start, drawn at random so that sources do not all poll at once.</summary>
    private const int FirstPollSecondsMin = 1;
    private const int FirstPollSecondsMax = 60;

    /// <summary>Each interval is drawn from ±10 % of IntervalSeconds, so that sources configured alike drift apart.</summary>
    private const double IntervalJitterFraction = 0.1;

    /// <summary>Retry delays double from this, with jitter, up to <see cref="RetryDelaySecondsMax"/> or half the interval.</summary>
    private const int RetryBaseSeconds = 2;
    private const int RetryDelaySecondsMax = 60;

    /// <summary>How much of a source's error answer is quoted in the status and the log.</summary>
    private const int ErrorExcerptCharsMax = 200;

    private readonly Sequencer _engine;
    private readonly HubMetrics _metrics;
    private readonly PollingSourceBoard _board;
    private readonly IConfiguration _configuration;
    private readonly TimeProvider _time;
    private readonly ILogger<PollingService> _log;
    private readonly HttpClient _http;

    public PollingService(Sequencer engine, HubMetrics metrics, PollingSourceBoard board, IConfiguration configuration, TimeProvider time,
        ILogger<PollingService> log)
    {
        _engine = engine;
        _metrics = metrics;
        _board = board;
        _configuration = configuration;
        _time = time;
        _log = log;
        _http = new HttpClient(new SocketsHttpHandler
        {
            // A redirect could carry the secret header to another host; a source must be configured at its final address.
            AllowAutoRedirect = false,
            // ResponseBytesMax is checked on the decompressed bytes, so a small compressed page cannot expand without bound.
            AutomaticDecompression = DecompressionMethods.All,
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        })
        {
            // Each page has its own time limit (TimeoutSeconds), which covers the body too.
            Timeout = Timeout.InfiniteTimeSpan,
        };
    }

    public override void Dispose()
    {
        _http.Dispose();
        base.Dispose();
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Read here, while the hub starts, not in the loops: the first polls are due relative to the
        // start, even if a loop's thread only begins after the clock has moved on.
        var startedAt = _time.GetUtcNow();
        return Task.WhenAll(_board.Sources.Where(s => s.Enabled)
            .Select(s => Task.Run(() => RunSource(s, startedAt, stoppingToken), CancellationToken.None)));
    }

    /// <summary>The loop of one source: wait, poll (with bounded retries), wait again, until the hub stops.</summary>
    private async Task RunSource(PollingSource source, DateTimeOffset hubStartedAt, CancellationToken stop)
    {
        var entry = _board[source.Id];
        try
        {
            var due = hubStartedAt + FirstDelay(source);
            var state = "waiting";
            while (true)
            {
                entry.Waiting(state, due);
                await WaitUntil(due, stop).ConfigureAwait(false);
                if (_engine.Role != EngineRole.Writer)
                {
                    // Only the writer polls: two hubs polling one source would double its load, and a
                    // standby cannot apply what it reads anyway.
                    state = "standby";
                    due = _time.GetUtcNow() + Min(source.Interval, TimeSpan.FromSeconds(StandbyRecheckSecondsMax));
                    continue;
                }
                state = "waiting";
                var lastStartedAt = _time.GetUtcNow();
                for (var attempt = 0; ; attempt++)
                {
                    var run = await Poll(source, entry, attempt, stop).ConfigureAwait(false);
                    lastStartedAt = run.StartedAt;
                    if (run.Outcome == PollOutcome.Succeeded || !run.Retryable || attempt >= source.RetriesMax)
                    {
                        break;
                    }
                    var delay = RetryDelay(source, attempt + 1, run.RetryAfter);
                    _log.LogInformation("Polling source {Source}: retry {Retry} of {RetriesMax} in {Seconds:0.0} s.",
                        source.Id, attempt + 1, source.RetriesMax, delay.TotalSeconds);
                    // Counted from the end of the attempt, not from whenever this line runs, so the retry
                    // keeps its place even when the clock moved on in between.
                    var retryAt = (run.FinishedAt ?? _time.GetUtcNow()) + delay;
                    entry.Waiting("retrying", retryAt);
                    await WaitUntil(retryAt, stop).ConfigureAwait(false);
                    if (_engine.Role != EngineRole.Writer)
                    {
                        break;
                    }
                }
                // The next poll is an interval after the last attempt started, not after it ended, so that a
                // slow source keeps its rhythm; an attempt that overran the interval is followed at once,
                // never by two polls at a time.
                var now = _time.GetUtcNow();
                due = lastStartedAt + Jittered(source.Interval);
                if (due < now)
                {
                    due = now;
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // The hub is stopping. Whatever a poll applied is durable; the rest is read again at the next start.
        }
        finally
        {
            entry.Stopped();
        }
    }

    /// <summary>One poll attempt: every page, in order, each decided before the next is asked for.</summary>
    private async Task<PollRun> Poll(PollingSource source, PollingSourceBoard.Entry entry, int attempt, CancellationToken stop)
    {
        var run = new PollRun(_time.GetUtcNow(), attempt, $"poll:{source.Id}:{Guid.NewGuid():N}");
        entry.Started(run);
        var page = 0;
        try
        {
            var secret = Secret(source, out var secretProblem);
            if (secretProblem is not null)
            {
                End(run, PollOutcome.Unauthorized, secretProblem, retryable: false);
                return run;
            }
            var scratch = new ArrayBufferWriter<byte>(512);
            await using var writer = new Utf8JsonWriter(scratch);
            var cursors = new HashSet<string>(StringComparer.Ordinal);
            string? cursor = null;
            while (true)
            {
                page++;
                if (page > source.PagesMax)
                {
                    End(run, PollOutcome.TooLarge, $"The source has more than {source.PagesMax} pages (PagesMax); the counts of the pages read were applied.", retryable: false);
                    return run;
                }
                var fetched = await Fetch(source, secret, cursor, page, stop).ConfigureAwait(false);
                if (fetched.Body is not { } body)
                {
                    run.RetryAfter = fetched.RetryAfter;
                    End(run, fetched.Outcome, Redact(fetched.Error!, secret), fetched.Retryable);
                    return run;
                }
                if (PollingWire.Parse(body, source.PageSizeMax, out var problem) is not { } parsed)
                {
                    // Nothing of a malformed page is applied: a page the hub cannot read whole is not trusted in part.
                    End(run, PollOutcome.Malformed, Redact($"Page {page} breaks the wire format; nothing of it was applied: {problem}", secret), retryable: false);
                    return run;
                }
                await Decide(source, entry, run, page, parsed, scratch, writer).ConfigureAwait(false);
                if (parsed.Next is null)
                {
                    break;
                }
                if (!cursors.Add(parsed.Next))
                {
                    End(run, PollOutcome.Malformed, $"Page {page} gives a next cursor the poll already followed, so the source would loop; this page and those before it were applied.", retryable: false);
                    return run;
                }
                cursor = parsed.Next;
            }
            End(run, PollOutcome.Succeeded, null, retryable: false);
        }
        catch (EngineUnavailableException ex)
        {
            End(run, PollOutcome.EngineUnavailable, $"Page {page}: the engine could not take the counts: {ex.Message}", retryable: true);
        }
        catch (Exception ex) when (!(ex is OperationCanceledException && stop.IsCancellationRequested))
        {
            // A bug, not a source's fault: logged in full here and shown in the status; the loop goes on at
            // the next interval, so one source's failure never stops the others or the hub.
            _log.LogError(ex, "Polling source {Source}: poll failed unexpectedly on page {Page} (correlation {CorrelationId}).", source.Id, page, run.CorrelationId);
            End(run, PollOutcome.Failed, $"Page {page}: unexpected error ({ex.GetType().Name}: {ex.Message}); see the hub's log.", retryable: false);
        }
        finally
        {
            // A poll cut short by the hub stopping has no outcome: it is neither a failure nor counted,
            // and what it applied stays applied.
            if (run.Outcome is not null)
            {
                entry.Finished(run);
                Report(source, entry, run);
            }
        }
        return run;
    }

    private void End(PollRun run, PollOutcome outcome, string? error, bool retryable) => run.End(_time.GetUtcNow(), outcome, error, retryable);

    /// <summary>A page's body, or why there is none.</summary>
    private sealed record PageFetch(byte[]? Body, PollOutcome Outcome, string? Error, bool Retryable, TimeSpan? RetryAfter = null);

    private async Task<PageFetch> Fetch(PollingSource source, string? secret, string? cursor, int page, CancellationToken stop)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, PageUri(source, cursor));
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        if (secret is not null)
        {
            request.Headers.TryAddWithoutValidation(source.AuthHeader, secret);
        }
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop);
        timeout.CancelAfter(source.Timeout);
        try
        {
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
            var status = (int)response.StatusCode;
            if (status is 401 or 403)
            {
                return new PageFetch(null, PollOutcome.Unauthorized,
                    $"Page {page}: the source answered {status} {response.ReasonPhrase}{await Excerpt(response, timeout.Token).ConfigureAwait(false)}; "
                    + (source.CredentialSet is null
                        ? "it wants credentials: name a set in Credentials holding authHeaderValue."
                        : $"check Truestock:Credentials:{source.CredentialSet}:{PollingSource.SecretName} and AuthHeader ({source.AuthHeader})."),
                    Retryable: false);
            }
            if (status is >= 300 and < 400)
            {
                return new PageFetch(null, PollOutcome.HttpError,
                    $"Page {page}: the source answered {status}, redirecting to {response.Headers.Location?.GetLeftPart(UriPartial.Path) ?? "nowhere"}; "
                    + "redirects are not followed (they could carry the secret to another host): configure the final address as Url.",
                    Retryable: false);
            }
            if (!response.IsSuccessStatusCode)
            {
                return new PageFetch(null, PollOutcome.HttpError,
                    $"Page {page}: the source answered {status} {response.ReasonPhrase}{await Excerpt(response, timeout.Token).ConfigureAwait(false)}.",
                    Retryable: status is 408 or 429 or >= 500, Backoff.RetryAfter(response, _time));
            }
            var mediaType = response.Content.Headers.ContentType?.MediaType;
            if (mediaType is null || !(mediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase)
                || mediaType.EndsWith("+json", StringComparison.OrdinalIgnoreCase)))
            {
                return new PageFetch(null, PollOutcome.Malformed,
                    $"Page {page} breaks the wire format; nothing of it was applied: its Content-Type is '{mediaType ?? "(none)"}', not application/json.",
                    Retryable: false);
            }
            if (response.Content.Headers.ContentLength > source.ResponseBytesMax)
            {
                return TooLarge(source, page);
            }
            var stream = await response.Content.ReadAsStreamAsync(timeout.Token).ConfigureAwait(false);
            await using (stream.ConfigureAwait(false))
            {
                using var buffer = new MemoryStream();
                var chunk = new byte[16 * 1024];
                int read;
                while ((read = await stream.ReadAsync(chunk, timeout.Token).ConfigureAwait(false)) > 0)
                {
                    if (buffer.Length + read > source.ResponseBytesMax)
                    {
                        return TooLarge(source, page);
                    }
                    buffer.Write(chunk, 0, read);
                }
                return new PageFetch(buffer.ToArray(), PollOutcome.Succeeded, null, Retryable: false);
            }
        }
        catch (OperationCanceledException) when (!stop.IsCancellationRequested && timeout.IsCancellationRequested)
        {
            return new PageFetch(null, PollOutcome.Timeout,
                $"Page {page} did not arrive within {source.Timeout.TotalSeconds:0} s (TimeoutSeconds).", Retryable: true);
        }
        catch (HttpRequestException ex)
        {
            return new PageFetch(null, PollOutcome.Unreachable, $"Page {page}: {ex.Message}", Retryable: true);
        }
        catch (IOException ex)
        {
            // The connection broke while the body was read.
            return new PageFetch(null, PollOutcome.Unreachable, $"Page {page}: the answer was cut off: {ex.Message}", Retryable: true);
        }
    }

    private static PageFetch TooLarge(PollingSource source, int page) =>
        new(null, PollOutcome.TooLarge, $"Page {page} is larger than {source.ResponseBytesMax} bytes (ResponseBytesMax); nothing of it was applied.", Retryable: false);

    /// <summary>
    /// Decides one page: items the hub cannot place are reported and skipped; for the others, the
    /// positions whose onHand differs from the source's get a count as of the source's timestamp,
    /// applied in batches of at most 1,000 like POST /v1/events.
    /// </summary>
    private async Task Decide(PollingSource source, PollingSourceBoard.Entry entry, PollRun run, int page, PolledPage parsed,
        ArrayBufferWriter<byte> scratch, Utf8JsonWriter writer)
    {
        foreach (var error in parsed.Errors)
        {
            run.ItemError(page, error);
        }
        var now = _time.GetUtcNow();
        var candidates = new List<(PolledItem Item, string LocationId, DateTimeOffset At)>(parsed.Items.Count);
        foreach (var item in parsed.Items)
        {
            if (source.MapLocation(item.Location) is not { } locationId)
            {
                run.ItemError(page, new PolledItemError(item.Index, item.Sku, item.Location, "unmapped-location", item.Location is null
                    ? "The item names no location and the source has no DefaultLocationId."
                    : $"Location '{item.Location}' is not in LocationMap; add Truestock:PollingSources:{source.Id}:LocationMap:{item.Location}={{hub location id}}."));
                continue;
            }
            // The source's own timestamp, so that the engine's count ordering places the count among the
            // movements the hub recorded around it, whatever order polls arrive in.
            var at = item.CountedAt ?? parsed.AsOf;
            if (at > now + source.ClockSkewMax)
            {
                run.ItemError(page, new PolledItemError(item.Index, item.Sku, item.Location, "future-timestamp",
                    $"{(item.CountedAt is null ? "asOf" : "countedAt")} {at:O} is more than {source.ClockSkewMax.TotalSeconds:0} s past the hub's clock ({now:O}); "
                    + "a count from the future would supersede every movement until then. Check the source's clock (ClockSkewSecondsMax)."));
                continue;
            }
            candidates.Add((item, locationId, at));
        }

        // Read through the engine's loop, so the comparison sees every write acknowledged before it.
        var hub = await _engine.Read((shard, _) =>
        {
            var found = new (bool Declared, long OnHand)[candidates.Count];
            for (var i = 0; i < candidates.Count; i++)
            {
                var (item, locationId, _) = candidates[i];
                found[i] = (shard.FindLocation(locationId) is not null, shard.FindPosition(item.Sku, locationId)?.OnHand ?? 0);
            }
            return found;
        }).ConfigureAwait(false);

        var counts = new List<(PolledItem Item, StockEvent Event)>();
        long unchanged = 0;
        for (var i = 0; i < candidates.Count; i++)
        {
            var (item, locationId, at) = candidates[i];
            if (!hub[i].Declared)
            {
                run.ItemError(page, new PolledItemError(item.Index, item.Sku, item.Location, RejectionTypes.UnknownLocation,
                    $"Hub location '{locationId}'{(item.Location is null ? "" : $" (source location '{item.Location}')")} is not declared; declare it with PUT /v1/locations/{locationId}."));
                continue;
            }
            if (hub[i].OnHand == item.OnHand)
            {
                unchanged++;
                continue;
            }
            counts.Add((item, CsvImport.SnapshotCount(scratch, writer, source.Id, at, item.Sku, locationId, item.OnHand, run.CorrelationId)));
        }

        foreach (var chunk in counts.Chunk(Limits.EventsPerRequestMax))
        {
            var outcomes = await EventEndpoints.Apply(_engine, _metrics, chunk.Select(c => c.Event).ToList()).ConfigureAwait(false);
            int applied = 0, duplicate = 0, stale = 0, rejected = 0;
            for (var i = 0; i < outcomes.Length; i++)
            {
                switch (outcomes[i].Status)
                {
                    case EventStatus.Applied or EventStatus.Superseded:
                        applied++;
                        break;
                    case EventStatus.Duplicate:
                        duplicate++;
                        break;
                    case EventStatus.Stale:
                        stale++;
                        break;
                    default:
                        rejected++;
                        var item = chunk[i].Item;
                        run.ItemError(page, new PolledItemError(item.Index, item.Sku, item.Location, outcomes[i].ErrorType!,
                            $"{chunk[i].Event.EventId}: {outcomes[i].ErrorDetail}"));
                        break;
                }
            }
            run.Decided(chunk.Length, applied, duplicate, stale, rejected);
            Interlocked.Add(ref entry.CountsEmittedTotal, chunk.Length);
        }
        run.PageRead(parsed.ItemCount, unchanged);
    }

    /// <summary>Logs the end of an attempt: failures and skipped items as warnings, changes as information.</summary>
    private void Report(PollingSource source, PollingSourceBoard.Entry entry, PollRun run)
    {
        var view = run.View();
        if (run.Outcome != PollOutcome.Succeeded)
        {
            _log.LogWarning("Polling source {Source} failed ({Outcome}, attempt {Attempt}) after {Pages} page(s) and {Counts} count(s): {Error} (correlation {CorrelationId})",
                source.Id, view.Outcome, run.Attempt, view.Pages, view.CountsEmitted, view.Error, run.CorrelationId);
        }
        else if (view.CountsEmitted > 0 || view.ItemErrorsTotal > 0)
        {
            _log.LogInformation("Polling source {Source}: {Pages} page(s), {Items} item(s), {Unchanged} unchanged, {Counts} count(s) sent "
                + "({Applied} applied, {Duplicate} duplicate, {Stale} stale, {Rejected} rejected) (correlation {CorrelationId}).",
                source.Id, view.Pages, view.ItemsRead, view.Unchanged, view.CountsEmitted, view.Applied, view.Duplicate, view.Stale, view.Rejected, run.CorrelationId);
        }
        else
        {
            _log.LogDebug("Polling source {Source}: {Pages} page(s), {Items} item(s), no differences.", source.Id, view.Pages, view.ItemsRead);
        }
        // The same bad items come back at every poll until the source or the settings are fixed; the
        // status always shows them, and the log says so again only when their number changes.
        var itemErrors = run.ItemErrorsTotal;
        var changed = itemErrors != entry.ItemErrorsLogged;
        entry.ItemErrorsLogged = itemErrors;
        if (run.FirstItemError is { } first && changed)
        {
            _log.LogWarning("Polling source {Source}: {Errors} item(s) skipped or rejected; the first, page {Page} item {Index} (SKU {Sku}, location {Location}): {Type}: {Detail}",
                source.Id, view.ItemErrorsTotal, first.Page, first.Index, first.Sku, first.Location, first.Type, first.Detail);
        }
    }

    /// <summary>
    /// The secret of the source, read from configuration at every poll (so a rotated secret is picked up
    /// without a restart and the secret never sits in options), or null when the source has no credentials.
    /// </summary>
    private string? Secret(PollingSource source, out string? problem)
    {
        problem = null;
        if (source.CredentialSet is not { } set)
        {
            return null;
        }
        var secret = _configuration[$"Truestock:Credentials:{set}:{PollingSource.SecretName}"];
        if (string.IsNullOrEmpty(secret))
        {
            problem = $"Truestock:Credentials:{set}:{PollingSource.SecretName} is not set any more; the source was not called.";
            return null;
        }
        if (secret.Any(char.IsControl))
        {
            // A line break would end the header early and let the rest pass as another header.
            problem = $"Truestock:Credentials:{set}:{PollingSource.SecretName} contains control characters; the source was not called.";
            return null;
        }
        return secret;
    }

    private static Uri PageUri(PollingSource source, string? cursor)
    {
        var url = source.Url!;
        var query = new StringBuilder(url.Query.TrimStart('?'));
        if (query.Length > 0)
        {
            query.Append('&');
        }
        query.Append("limit=").Append(source.PageSizeMax.ToString(CultureInfo.InvariantCulture));
        if (cursor is not null)
        {
            query.Append("&cursor=").Append(Uri.EscapeDataString(cursor));
        }
        return new UriBuilder(url) { Query = query.ToString() }.Uri;
    }

    /// <summary>The start of a source's error answer, on one line, for the status and the log.</summary>
    private static async Task<string> Excerpt(HttpResponseMessage response, CancellationToken token)
    {
        var buffer = new byte[ErrorExcerptCharsMax * 4];
        var stream = await response.Content.ReadAsStreamAsync(token).ConfigureAwait(false);
        int length = 0, read;
        await using (stream.ConfigureAwait(false))
        {
            while (length < buffer.Length && (read = await stream.ReadAsync(buffer.AsMemory(length), token).ConfigureAwait(false)) > 0)
            {
                length += read;
            }
        }
        var text = new string(Encoding.UTF8.GetString(buffer, 0, length).Select(c => char.IsControl(c) ? ' ' : c).ToArray()).Trim();
        if (text.Length == 0)
        {
            return "";
        }
        return ": " + (text.Length <= ErrorExcerptCharsMax ? text : text[..ErrorExcerptCharsMax] + "…");
    }

    /// <summary>Text that came from the source, with the secret taken out in case the source echoed it.</summary>
    private static string Redact(string text, string? secret) =>
        secret is { Length: > 0 } ? text.Replace(secret, "***", StringComparison.Ordinal) : text;

    /// <summary>
    /// Waits on the hub's clock until <paramref name="due"/>. The clock may move between reading it and
    /// arming the timer (a test's fake clock jumps in one step); a timer armed after such a jump would
    /// wait a whole extra period, so the clock is read again once the timer is armed.
    /// </summary>
    private async Task WaitUntil(DateTimeOffset due, CancellationToken stop)
    {
        var remaining = due - _time.GetUtcNow();
        if (remaining <= TimeSpan.Zero)
        {
            stop.ThrowIfCancellationRequested();
            return;
        }
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(stop);
        var delay = Task.Delay(remaining, _time, wait.Token);
        if (_time.GetUtcNow() >= due)
        {
            await wait.CancelAsync().ConfigureAwait(false);
            stop.ThrowIfCancellationRequested();
            return;
        }
        await delay.ConfigureAwait(false);
    }

    private static TimeSpan FirstDelay(PollingSource source)
    {
        var max = Math.Max(FirstPollSecondsMin, Math.Min(source.Interval.TotalSeconds, FirstPollSecondsMax));
        return TimeSpan.FromSeconds(FirstPollSecondsMin + Random.Shared.NextDouble() * (max - FirstPollSecondsMin));
    }

    private static TimeSpan Jittered(TimeSpan interval) =>
        interval * (1 - IntervalJitterFraction + 2 * IntervalJitterFraction * Random.Shared.NextDouble());

    /// <summary>
    /// The wait before retry number <paramref name="retry"/> (1-based): doubling from 2 s, capped at a minute
    /// or half the interval, drawn from the upper half of the step so retries never come at once; at least
    /// the source's Retry-After, up to an interval.
    /// </summary>
    private static TimeSpan RetryDelay(PollingSource source, int retry, TimeSpan? retryAfter)
    {
        var cap = Min(TimeSpan.FromSeconds(RetryDelaySecondsMax), source.Interval / 2);
        var step = Min(cap, TimeSpan.FromSeconds(RetryBaseSeconds * Math.Pow(2, Math.Min(retry - 1, 16))));
        var delay = step / 2 + step / 2 * Random.Shared.NextDouble();
        return retryAfter is { } asked && asked > delay ? Min(asked, source.Interval) : delay;
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;
}
