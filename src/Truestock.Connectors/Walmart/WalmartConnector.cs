using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Truestock.Connectors.Walmart;

/// <summary>
/// Publishes available-to-sell quantities to the Walmart US Marketplace Inventory API.
/// </summary>
/// <remarks>
/// <para>
/// Walmart gives two ways to set a quantity, with very different budgets: the single-item update
/// (<c>PUT /v3/inventory?sku=</c>, about 200 calls a minute, documented as meant for exceptional,
/// urgent changes) and the bulk inventory feed (<c>POST /v3/feeds?feedType=inventory</c>, up to
/// thousands of items per file but only about 10 feeds an hour, processed asynchronously). The
/// connector spends them deliberately:
/// </para>
/// <list type="number">
/// <item>urgent updates (stock-outs, low stock) go one by one through the single-item update, at once;</item>
/// <item>the non-urgent rest goes as one feed while the feed budget lasts, and the connector polls the
/// feed's status to turn each item's ingestion status into an outcome;</item>
/// <item>a non-urgent remainder smaller than <c>feedItemsMin</c> is not worth a feed slot and goes item by item;</item>
/// <item>when the feed budget is spent, non-urgent updates go item by item only if the single-item budget
/// clearly has room (leaving a reserve for urgent ones); otherwise they come back Transient so the publisher
/// retries them when a feed slot is free again.</item>
/// </list>
/// <para>
/// Walmart has no compare-and-set for inventory, so ordering is the publisher's job (it never sends a lower
/// version after a higher one). The connector guards the one reordering it can cause itself: a feed it could
/// not wait for may finish after a newer single-item update; when that feed's result arrives, the connector
/// re-sends the newer quantity (see docs/connectors/walmart.md).
/// </para>
/// <para>One <see cref="PublishAsync"/> runs at a time per connector; concurrent calls wait their turn.</para>
/// </remarks>
public sealed class WalmartConnector : IChannelConnector
{
    /// <summary>Retries of a throttled single-item call before its update comes back Transient.</summary>
    internal const int ThrottleRetriesMax = 3;

    /// <summary>Retries after timeouts and 5xx answers before an update comes back Transient.</summary>
    internal const int TransientRetriesMax = 2;

    /// <summary>Bytes read from an error or small answer (error bodies are quoted, never stored whole).</summary>
    internal const int AnswerBytesMax = 64 * 1024;

    /// <summary>Bytes read from one feed status page (50 items are a few tens of kilobytes).</summary>
    internal const int FeedPageBytesMax = 4 * 1024 * 1024;

    /// <summary>Items per feed status page: the documented default, accepted by every version of the API.</summary>
    internal const int FeedPageSize = 50;

    /// <summary>Unfinished feeds tracked at once (ten an hour are allowed, so this is hours of backlog).</summary>
    internal const int PendingFeedsMax = 64;

    /// <summary>Results of feeds that finished after their publish call, kept until the publisher asks again.</summary>
    internal const int LateResultsMax = 50_000;

    /// <summary>Quantities re-sent per publish call after a stale feed finished late.</summary>
    internal const int ReassertsPerCallMax = 200;

    /// <summary>Share of the single-item budget kept for urgent updates when non-urgent ones fall back to it.</summary>
    internal const double UrgentReserveFraction = 0.2;

    /// <summary>The longest wait the connector accepts from a throttle signal before answering Transient.</summary>
    internal static readonly TimeSpan ThrottleWaitMax = TimeSpan.FromSeconds(60);

    /// <summary>Backoff base and cap after transient errors and throttles without a wait hint.</summary>
    internal static readonly TimeSpan RetryDelayBase = TimeSpan.FromMilliseconds(250);

    /// <inheritdoc cref="RetryDelayBase"/>
    internal static readonly TimeSpan RetryDelayCap = TimeSpan.FromSeconds(10);

    /// <summary>Added to Walmart's replenish time, because its clock and ours never agree to the millisecond.</summary>
    internal static readonly TimeSpan ReplenishMargin = TimeSpan.FromMilliseconds(20);

    /// <summary>The token is renewed this long before it expires (capped at a quarter of its lifetime).</summary>
    internal static readonly TimeSpan TokenRefreshMargin = TimeSpan.FromSeconds(60);

    private static readonly MediaTypeWithQualityHeaderValue Json = new("application/json");

    private readonly WalmartSettings _settings;
    private readonly ConnectorContext _context;
    private readonly TimeProvider _time;
    private readonly Lane _items;
    private readonly Lane _feeds;
    private readonly Lane _status;
    private readonly Lane _tokens;
    private readonly SemaphoreSlim _publishGate = new(1, 1);

    private string? _accessToken;
    private DateTimeOffset _accessTokenRenewAt;

    // Feeds whose result the connector has not seen yet, by feed id, in submission order.
    private readonly Dictionary<string, PendingFeed> _pending = new(StringComparer.Ordinal);
    // (sku, version) of every item in a pending feed, so a retry of the same update waits for the feed instead of resending it.
    private readonly Dictionary<(string Sku, long Version), string> _pendingItems = [];
    // How many pending feeds carry each SKU, and the newest quantity accepted for it since (only while it is pending).
    private readonly Dictionary<string, int> _pendingSkuCount = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (long Version, long Quantity)> _acceptedWhilePending = new(StringComparer.Ordinal);
    // Newer quantities to write again because a stale feed finished after them.
    private readonly Dictionary<string, (long Version, long Quantity)> _reasserts = new(StringComparer.Ordinal);
    // Outcomes of pending feeds that finished between publish calls, answered when the publisher retries.
    private readonly Dictionary<(string Sku, long Version), PublishOutcome> _lateResults = [];
    private readonly Queue<(string Sku, long Version)> _lateResultOrder = new();

    private WalmartConnector(WalmartSettings settings, ConnectorContext context)
    {
        _settings = settings;
        _context = context;
        _time = context.Time;
        _items = new Lane("inventory update", new TokenBucket(settings.InventoryCallsPerMinute, settings.InventoryCallsPerMinute / 60.0, _time));
        _feeds = new Lane("inventory feed", new TokenBucket(settings.FeedsPerHour, settings.FeedsPerHour / 3600.0, _time));
        // Feed status shares 5000 calls a minute with the all-feeds API; the connector needs a sliver of that.
        _status = new Lane("feed status", new TokenBucket(50, 5000 / 60.0, _time));
        // The Token API has no documented limit; a token lives 15 minutes, so a modest guard is plenty.
        _tokens = new Lane("token", new TokenBucket(5, 1, _time));
    }

    /// <inheritdoc />
    public int BatchSizeMax => _settings.BatchSizeMax;

    /// <inheritdoc />
    public ConnectorCounters Counters { get; } = new();

    /// <summary>Returns an error message naming the invalid field, or null when the settings are valid.</summary>
    public static string? Validate(JsonElement settings) => WalmartSettings.TryParse(settings, out _);

    /// <summary>Creates the connector for valid settings (see <see cref="Validate"/>).</summary>
    public static IChannelConnector Create(JsonElement settings, ConnectorContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var error = WalmartSettings.TryParse(settings, out var parsed);
        if (error is not null)
        {
            throw new ArgumentException($"Invalid walmart connector settings for channel '{context.ChannelId}': {error}", nameof(settings));
        }
        return new WalmartConnector(parsed!, context);
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<PublishOutcome>> PublishAsync(IReadOnlyList<AtsUpdate> updates, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(updates);
        if (updates.Count > BatchSizeMax)
        {
            throw new ArgumentException($"A batch holds at most {BatchSizeMax} updates; got {updates.Count}.", nameof(updates));
        }
        var skus = new HashSet<string>(StringComparer.Ordinal);
        foreach (var update in updates)
        {
            if (!skus.Add(update.Sku))
            {
                throw new ArgumentException($"A batch holds at most one update per SKU; '{update.Sku}' appears twice.", nameof(updates));
            }
        }
        await _publishGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await PublishSerializedAsync(updates, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _publishGate.Release();
        }
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        _publishGate.Dispose();
        return ValueTask.CompletedTask;
    }

    private async Task<IReadOnlyList<PublishOutcome>> PublishSerializedAsync(IReadOnlyList<AtsUpdate> updates, CancellationToken ct)
    {
        var outcomes = new PublishOutcome?[updates.Count];
        await ResolvePendingFeedsAsync(ct).ConfigureAwait(false);

        var urgent = new List<int>();
        var normal = new List<int>();
        for (var i = 0; i < updates.Count; i++)
        {
            var update = updates[i];
            var key = (update.Sku, update.Version);
            if (_lateResults.Remove(key, out var known))
            {
                outcomes[i] = known;
            }
            else if (_pendingItems.TryGetValue(key, out var feedId))
            {
                // Resending would spend budget and could race the feed; the feed's own result will answer this update.
                outcomes[i] = Transient(update, $"Walmart is still processing inventory feed {feedId}, which carries this update.");
            }
            else
            {
                (update.Urgent ? urgent : normal).Add(i);
            }
        }

        foreach (var i in urgent)
        {
            outcomes[i] = await UpdateItemAsync(updates[i], ct).ConfigureAwait(false);
        }
        if (normal.Count > 0)
        {
            await PublishNonUrgentAsync(updates, normal, outcomes, ct).ConfigureAwait(false);
        }
        await ReassertAsync(ct).ConfigureAwait(false);
        return Array.ConvertAll(outcomes, o => o!);
    }

    private async Task PublishNonUrgentAsync(IReadOnlyList<AtsUpdate> updates, List<int> indexes, PublishOutcome?[] outcomes, CancellationToken ct)
    {
        if (indexes.Count < _settings.FeedItemsMin)
        {
            foreach (var i in indexes)
            {
                outcomes[i] = await UpdateItemAsync(updates[i], ct).ConfigureAwait(false);
            }
            return;
        }

        string? feedFailure = null;
        if (_feeds.Bucket.Available >= 1 && _time.GetUtcNow() >= _feeds.NotBefore)
        {
            feedFailure = await PublishFeedAsync(updates, indexes, outcomes, ct).ConfigureAwait(false);
            if (feedFailure is null)
            {
                return;
            }
        }

        // No feed this time: spend single-item calls only if they clearly fit, keeping a reserve for urgent updates.
        var spare = _items.Bucket.Available - (_items.Bucket.Capacity * UrgentReserveFraction);
        if (spare >= indexes.Count && _time.GetUtcNow() >= _items.NotBefore)
        {
            foreach (var i in indexes)
            {
                outcomes[i] = await UpdateItemAsync(updates[i], ct).ConfigureAwait(false);
            }
            return;
        }
        var reason = feedFailure ?? string.Create(CultureInfo.InvariantCulture,
            $"The Walmart inventory feed budget ({_settings.FeedsPerHour:0.##} per hour) is spent and single-item calls have no room for {indexes.Count} updates; a feed slot frees in about {FeedWait().TotalSeconds:0} s.");
        foreach (var i in indexes)
        {
            outcomes[i] = Transient(updates[i], reason);
        }
    }

    private TimeSpan FeedWait()
    {
        var bucket = _feeds.Bucket;
        var refill = TimeSpan.FromSeconds(Math.Max(0, 1 - bucket.Available) / bucket.RefillPerSecond);
        var hinted = _feeds.NotBefore - _time.GetUtcNow();
        return hinted > refill ? hinted : refill;
    }

    // ---- single-item updates ------------------------------------------------------------

    private async Task<PublishOutcome> UpdateItemAsync(AtsUpdate update, CancellationToken ct)
    {
        var reply = await SendAsync(_items, () => ItemRequest(update.Sku, update.Quantity), ThrottleRetriesMax, TransientRetriesMax, AnswerBytesMax, ct)
            .ConfigureAwait(false);
        if (reply.Verdict == PublishStatus.Accepted)
        {
            NoteAccepted(update.Sku, update.Version, update.Quantity);
            return new PublishOutcome(update.Sku, update.Version, PublishStatus.Accepted);
        }
        return new PublishOutcome(update.Sku, update.Version, reply.Verdict, reply.Error);
    }

    private HttpRequestMessage ItemRequest(string sku, long quantity)
    {
        var query = new StringBuilder("v3/inventory?sku=").Append(Uri.EscapeDataString(sku));
        if (_settings.ShipNode is { } node)
        {
            query.Append("&shipNode=").Append(Uri.EscapeDataString(node));
        }
        var content = new ByteArrayContent(WalmartWire.InventoryItem(sku, quantity));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return new HttpRequestMessage(HttpMethod.Put, new Uri(_settings.BaseUri, query.ToString())) { Content = content };
    }

    // ---- feeds ----------------------------------------------------------------------------

    /// <summary>Submits one feed and waits (bounded) for its result; returns why no feed went out, or null.</summary>
    private async Task<string?> PublishFeedAsync(IReadOnlyList<AtsUpdate> updates, List<int> indexes, PublishOutcome?[] outcomes, CancellationToken ct)
    {
        var batch = indexes.ConvertAll(i => updates[i]);
        var file = WalmartWire.InventoryFeed(batch);
        // A feed slot is too scarce to retry blindly: a throttle or a failed submission falls back to the caller's plan.
        var reply = await SendAsync(_feeds, () => FeedRequest(file), throttleRetriesMax: 0, transientRetriesMax: 0, AnswerBytesMax, ct)
            .ConfigureAwait(false);
        if (reply.Verdict == PublishStatus.Permanent)
        {
            foreach (var i in indexes)
            {
                outcomes[i] = new PublishOutcome(updates[i].Sku, updates[i].Version, PublishStatus.Permanent, reply.Error);
            }
            return null;
        }
        if (reply.Verdict == PublishStatus.Transient)
        {
            return $"Walmart did not take the inventory feed: {reply.Error}";
        }
        var feedId = WalmartWire.ReadFeedId(reply.Body);
        if (feedId is null)
        {
            return WalmartWire.Bound($"Walmart answered the inventory feed without a feedId: {reply.Body}");
        }

        var feed = Track(feedId, batch);
        var lastStatus = "RECEIVED";
        for (var attempt = 0; attempt < _settings.FeedPollAttemptsMax; attempt++)
        {
            await Task.Delay(_settings.FeedPollInterval, _time, ct).ConfigureAwait(false);
            var (results, status) = await CheckFeedAsync(feed, ct).ConfigureAwait(false);
            lastStatus = status;
            if (results is not null)
            {
                Complete(feed, results);
                foreach (var i in indexes)
                {
                    outcomes[i] = results[updates[i].Sku];
                }
                return null;
            }
        }
        var reason = string.Create(CultureInfo.InvariantCulture,
            $"Walmart inventory feed {feedId} is still {lastStatus} after {_settings.FeedPollAttemptsMax} status checks; the connector keeps tracking it and answers when it finishes.");
        foreach (var i in indexes)
        {
            outcomes[i] = Transient(updates[i], reason);
        }
        return null;
    }

    private HttpRequestMessage FeedRequest(byte[] file)
    {
        var query = new StringBuilder("v3/feeds?feedType=inventory");
        if (_settings.ShipNode is { } node)
        {
            query.Append("&shipNode=").Append(Uri.EscapeDataString(node));
        }
        var part = new ByteArrayContent(file);
        part.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        var form = new MultipartFormDataContent { { part, "file", "inventory.json" } };
        return new HttpRequestMessage(HttpMethod.Post, new Uri(_settings.BaseUri, query.ToString())) { Content = form };
    }

    /// <summary>
    /// Checks a feed once. Returns one outcome per item when the feed finished (PROCESSED or ERROR), or null
    /// results with the status seen (RECEIVED, INPROGRESS, or why the check failed).
    /// </summary>
    private async Task<(Dictionary<string, PublishOutcome>? Results, string Status)> CheckFeedAsync(PendingFeed feed, CancellationToken ct)
    {
        var first = await FeedPageAsync(feed.FeedId, 0, ct).ConfigureAwait(false);
        if (first.Page is not { } page)
        {
            return (null, $"unknown (status check failed: {first.Error})");
        }
        switch (page.FeedStatus)
        {
            case "PROCESSED":
                break;
            case "ERROR":
                // Nothing in the file was processed; that is not any one update's fault, so every item may be retried.
                var whole = $"Walmart inventory feed {feed.FeedId} failed as a whole (ERROR): {page.FeedError ?? "no error detail"}";
                return (feed.Items.ToDictionary(p => p.Key, p => new PublishOutcome(p.Key, p.Value.Version, PublishStatus.Transient, WalmartWire.Bound(whole)), StringComparer.Ordinal), "ERROR");
            default:
                return (null, page.FeedStatus);
        }

        var reported = new Dictionary<string, WalmartFeedItem>(StringComparer.Ordinal);
        foreach (var item in page.Items)
        {
            reported[item.Sku] = item;
        }
        var expected = Math.Min(page.ItemsReceived, feed.Items.Count);
        var pagesMax = (feed.Items.Count / FeedPageSize) + 2;
        for (var p = 1; reported.Count < expected && page.Items.Count > 0 && p < pagesMax; p++)
        {
            var next = await FeedPageAsync(feed.FeedId, p * FeedPageSize, ct).ConfigureAwait(false);
            if (next.Page is not { } more)
            {
                return (null, $"PROCESSED (item details unavailable: {next.Error})");
            }
            page = more;
            foreach (var item in more.Items)
            {
                reported[item.Sku] = item;
            }
        }

        var results = new Dictionary<string, PublishOutcome>(StringComparer.Ordinal);
        foreach (var (sku, sent) in feed.Items)
        {
            results[sku] = reported.TryGetValue(sku, out var item)
                ? ItemOutcome(feed.FeedId, sku, sent.Version, item)
                : new PublishOutcome(sku, sent.Version, PublishStatus.Transient, $"Walmart inventory feed {feed.FeedId} did not report this SKU.");
        }
        return (results, "PROCESSED");
    }

    private static PublishOutcome ItemOutcome(string feedId, string sku, long version, WalmartFeedItem item)
    {
        var detail = WalmartWire.Bound($"{item.IngestionStatus} in inventory feed {feedId}: {item.Error ?? "no error detail"}");
        return item.IngestionStatus switch
        {
            "SUCCESS" => new PublishOutcome(sku, version, PublishStatus.Accepted),
            // Invalid or missing data (an unknown SKU, say) is not fixed by sending it again.
            "DATA_ERROR" => new PublishOutcome(sku, version, PublishStatus.Permanent, detail),
            // SYSTEM_ERROR and TIMEOUT_ERROR are Walmart's own trouble; INPROGRESS and anything new are worth retrying.
            _ => new PublishOutcome(sku, version, PublishStatus.Transient, detail),
        };
    }

    private async Task<(WalmartFeedPage? Page, string? Error)> FeedPageAsync(string feedId, int offset, CancellationToken ct)
    {
        var path = string.Create(CultureInfo.InvariantCulture,
            $"v3/feeds/{Uri.EscapeDataString(feedId)}?includeDetails=true&offset={offset}&limit={FeedPageSize}");
        var reply = await SendAsync(_status, () => new HttpRequestMessage(HttpMethod.Get, new Uri(_settings.BaseUri, path)),
            ThrottleRetriesMax, TransientRetriesMax, FeedPageBytesMax, ct).ConfigureAwait(false);
        if (reply.Verdict != PublishStatus.Accepted)
        {
            return (null, reply.Error);
        }
        var page = WalmartWire.ReadFeedPage(reply.Body);
        return page is null ? (null, "the answer is not a feed status") : (page, null);
    }

    private PendingFeed Track(string feedId, List<AtsUpdate> batch)
    {
        var feed = new PendingFeed(feedId, _time.GetUtcNow(), batch.ToDictionary(u => u.Sku, u => (u.Version, u.Quantity), StringComparer.Ordinal));
        _pending[feedId] = feed;
        foreach (var update in batch)
        {
            _pendingItems[(update.Sku, update.Version)] = feedId;
            _pendingSkuCount[update.Sku] = _pendingSkuCount.GetValueOrDefault(update.Sku) + 1;
        }
        while (_pending.Count > PendingFeedsMax)
        {
            Forget(_pending.Values.MinBy(f => f.SubmittedAt)!);
        }
        return feed;
    }

    /// <summary>Records a finished feed: queues re-sends where it landed after a newer quantity, and stops tracking it.</summary>
    private void Complete(PendingFeed feed, Dictionary<string, PublishOutcome> results)
    {
        foreach (var (sku, sent) in feed.Items)
        {
            if (results[sku].Status == PublishStatus.Accepted
                && _acceptedWhilePending.TryGetValue(sku, out var newer) && newer.Version > sent.Version)
            {
                // Walmart applied this feed's older quantity after the newer one: write the newer one again.
                _reasserts[sku] = newer;
            }
        }
        Forget(feed);
        foreach (var (sku, sent) in feed.Items)
        {
            if (results[sku].Status == PublishStatus.Accepted)
            {
                NoteAccepted(sku, sent.Version, sent.Quantity);
            }
        }
    }

    private void Forget(PendingFeed feed)
    {
        _pending.Remove(feed.FeedId);
        foreach (var (sku, sent) in feed.Items)
        {
            _pendingItems.Remove((sku, sent.Version));
            var count = _pendingSkuCount.GetValueOrDefault(sku) - 1;
            if (count > 0)
            {
                _pendingSkuCount[sku] = count;
            }
            else
            {
                _pendingSkuCount.Remove(sku);
                _acceptedWhilePending.Remove(sku);
            }
        }
    }

    /// <summary>Remembers an accepted quantity while an older feed carrying the SKU may still land.</summary>
    private void NoteAccepted(string sku, long version, long quantity)
    {
        if (_pendingSkuCount.ContainsKey(sku)
            && (!_acceptedWhilePending.TryGetValue(sku, out var known) || known.Version < version))
        {
            _acceptedWhilePending[sku] = (version, quantity);
        }
        if (_reasserts.TryGetValue(sku, out var queued) && queued.Version <= version)
        {
            _reasserts.Remove(sku);
        }
    }

    /// <summary>Checks every feed left unfinished by an earlier call once, and drops feeds tracked too long.</summary>
    private async Task ResolvePendingFeedsAsync(CancellationToken ct)
    {
        foreach (var feed in _pending.Values.OrderBy(f => f.SubmittedAt).ToList())
        {
            if (_time.GetUtcNow() - feed.SubmittedAt > _settings.FeedPendingMax)
            {
                // Its updates were answered Transient; once forgotten, the publisher's retries send them afresh.
                Forget(feed);
                continue;
            }
            var (results, _) = await CheckFeedAsync(feed, ct).ConfigureAwait(false);
            if (results is null)
            {
                continue;
            }
            Complete(feed, results);
            foreach (var outcome in results.Values)
            {
                var key = (outcome.Sku, outcome.Version);
                if (_lateResults.TryAdd(key, outcome))
                {
                    _lateResultOrder.Enqueue(key);
                }
            }
            while (_lateResultOrder.Count > LateResultsMax)
            {
                _lateResults.Remove(_lateResultOrder.Dequeue());
            }
        }
    }

    /// <summary>Re-sends quantities a late, stale feed overwrote (bounded per call; failures are tried again next call).</summary>
    private async Task ReassertAsync(CancellationToken ct)
    {
        if (_reasserts.Count == 0)
        {
            return;
        }
        // Updates of this batch already cleared the re-sends they supersede (NoteAccepted), so what is left is still newest.
        foreach (var (sku, newest) in _reasserts.Take(ReassertsPerCallMax).ToList())
        {
            var outcome = await UpdateItemAsync(new AtsUpdate(sku, newest.Quantity, newest.Version, Urgent: true), ct).ConfigureAwait(false);
            if (outcome.Status != PublishStatus.Transient)
            {
                _reasserts.Remove(sku);
            }
        }
    }

    // ---- HTTP ----------------------------------------------------------------------------

    /// <summary>
    /// Sends one call with the auth headers, after the lane's token bucket and any wait Walmart asked for.
    /// Retries throttles and transient failures (bounded), refreshes the token once on 401, and answers
    /// Accepted (2xx, with the bounded body), Transient or Permanent with Walmart's own error text.
    /// </summary>
    private async Task<Reply> SendAsync(Lane lane, Func<HttpRequestMessage> build, int throttleRetriesMax, int transientRetriesMax, int bytesMax, CancellationToken ct)
    {
        var throttles = 0;
        var transients = 0;
        var refreshed = false;
        var takeToken = true;
        while (true)
        {
            var token = await AccessTokenAsync(ct).ConfigureAwait(false);
            if (token.Error is not null)
            {
                return new Reply(token.Verdict, 0, "", token.Error);
            }
            var held = lane.NotBefore - _time.GetUtcNow();
            if (held > ThrottleWaitMax)
            {
                // Walmart asked for a long pause on this API: waiting inside a publish call would hold up every other update.
                return new Reply(PublishStatus.Transient, 429, "", string.Create(CultureInfo.InvariantCulture,
                    $"Walmart asked to pause {lane.Name} calls for another {held.TotalSeconds:0} s."));
            }
            await lane.WaitAsync(_time, takeToken, ct).ConfigureAwait(false);
            takeToken = true;

            using var request = build();
            request.Headers.TryAddWithoutValidation("WM_SEC.ACCESS_TOKEN", token.Token);
            AddCommonHeaders(request);
            var answer = await ExchangeAsync(request, lane, bytesMax, ct).ConfigureAwait(false);

            if (answer.Status is >= 200 and < 300)
            {
                return new Reply(PublishStatus.Accepted, answer.Status, answer.Body, null);
            }
            if (answer.Status == 429)
            {
                Interlocked.Increment(ref Counters.Throttles);
                lane.Bucket.Drain();
                var error = WalmartWire.DescribeError(429, answer.Body);
                var wait = answer.ThrottleWait ?? answer.RetryAfter ?? Backoff.Delay(throttles + 1, TimeSpan.FromSeconds(1), RetryDelayCap, Random.Shared);
                if (++throttles > throttleRetriesMax || wait > ThrottleWaitMax)
                {
                    lane.Defer(_time.GetUtcNow() + wait);
                    return new Reply(PublishStatus.Transient, 429, "", $"Walmart throttled the {lane.Name} call: {error}");
                }
                lane.Defer(_time.GetUtcNow() + wait);
                continue;
            }

            Interlocked.Increment(ref Counters.Failures);
            if (answer.Status == 401 && !refreshed)
            {
                // An expired or revoked token: get a new one once; a second 401 means the credentials themselves fail.
                // The gateway refused the call before it reached the API, so the retry does not spend another token.
                refreshed = true;
                takeToken = false;
                _accessToken = null;
                continue;
            }
            var transient = answer.Status is 0 or 408 or 423 or >= 500;
            var text = answer.Status == 0 ? answer.Failure! : WalmartWire.DescribeError(answer.Status, answer.Body);
            if (!transient)
            {
                return new Reply(PublishStatus.Permanent, answer.Status, "", text);
            }
            if (++transients > transientRetriesMax)
            {
                return new Reply(PublishStatus.Transient, answer.Status, "", text);
            }
            var delay = answer.RetryAfter is { } hinted && hinted <= ThrottleWaitMax
                ? hinted
                : Backoff.Delay(transients, RetryDelayBase, RetryDelayCap, Random.Shared);
            await Task.Delay(delay, _time, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Makes one HTTP exchange with the per-call timeout and reads the (bounded) answer; never throws for channel failures.</summary>
    private async Task<Answer> ExchangeAsync(HttpRequestMessage request, Lane lane, int bytesMax, CancellationToken ct)
    {
        Interlocked.Increment(ref Counters.Calls);
        using var timeout = new CancellationTokenSource(_settings.Timeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
        try
        {
            using var response = await _context.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, linked.Token).ConfigureAwait(false);
            var throttleWait = lane.Observe(response, _time);
            var body = await ReadBoundedAsync(response.Content, bytesMax, linked.Token).ConfigureAwait(false);
            return new Answer((int)response.StatusCode, body, null, throttleWait, Backoff.RetryAfter(response, _time));
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return new Answer(0, "", string.Create(CultureInfo.InvariantCulture,
                $"The Walmart {lane.Name} call timed out after {_settings.Timeout.TotalSeconds:0.#} s."), null, null);
        }
        catch (HttpRequestException ex)
        {
            return new Answer(0, "", WalmartWire.Bound($"The Walmart {lane.Name} call failed: {ex.Message}"), null, null);
        }
        catch (IOException ex)
        {
            return new Answer(0, "", WalmartWire.Bound($"The Walmart {lane.Name} answer broke off: {ex.Message}"), null, null);
        }
    }

    private void AddCommonHeaders(HttpRequestMessage request)
    {
        request.Headers.TryAddWithoutValidation("WM_SVC.NAME", _settings.ServiceName);
        request.Headers.TryAddWithoutValidation("WM_QOS.CORRELATION_ID", Guid.NewGuid().ToString());
        request.Headers.Accept.Add(Json);
    }

    private static async Task<string> ReadBoundedAsync(HttpContent content, int bytesMax, CancellationToken ct)
    {
        var stream = await content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            using var buffer = new MemoryStream();
            var chunk = new byte[16 * 1024];
            while (buffer.Length < bytesMax)
            {
                var read = await stream.ReadAsync(chunk.AsMemory(0, (int)Math.Min(chunk.Length, bytesMax - buffer.Length)), ct).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }
                buffer.Write(chunk, 0, read);
            }
            return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
        }
    }

    // ---- token ---------------------------------------------------------------------------

    /// <summary>The cached access token, renewed shortly before it expires (the Token API grants 15 minutes).</summary>
    private async Task<TokenReply> AccessTokenAsync(CancellationToken ct)
    {
        if (_accessToken is { } cached && _time.GetUtcNow() < _accessTokenRenewAt)
        {
            return new TokenReply(cached, PublishStatus.Accepted, null);
        }
        _accessToken = null;
        var clientId = _context.Credential("clientId");
        var clientSecret = _context.Credential("clientSecret");
        if (string.IsNullOrEmpty(clientId) || string.IsNullOrEmpty(clientSecret))
        {
            var missing = string.IsNullOrEmpty(clientId) ? "clientId" : "clientSecret";
            return new TokenReply(null, PublishStatus.Permanent,
                $"The credential set '{_settings.CredentialSet ?? _context.ChannelId}' of channel '{_context.ChannelId}' has no {missing} for Walmart.");
        }
        var basic = Convert.ToBase64String(Encoding.UTF8.GetBytes($"{clientId}:{clientSecret}"));

        var transients = 0;
        var throttles = 0;
        while (true)
        {
            await _tokens.WaitAsync(_time, takeToken: true, ct).ConfigureAwait(false);
            using var request = new HttpRequestMessage(HttpMethod.Post, _settings.TokenUri)
            {
                Content = new FormUrlEncodedContent([new KeyValuePair<string, string>("grant_type", "client_credentials")]),
            };
            request.Headers.Authorization = new AuthenticationHeaderValue("Basic", basic);
            AddCommonHeaders(request);
            var answer = await ExchangeAsync(request, _tokens, AnswerBytesMax, ct).ConfigureAwait(false);
            if (answer.Status is >= 200 and < 300 && WalmartWire.ReadToken(answer.Body) is { } granted)
            {
                var margin = granted.Lifetime / 4 < TokenRefreshMargin ? granted.Lifetime / 4 : TokenRefreshMargin;
                _accessToken = granted.Token;
                _accessTokenRenewAt = _time.GetUtcNow() + granted.Lifetime - margin;
                return new TokenReply(granted.Token, PublishStatus.Accepted, null);
            }
            var text = answer.Status == 0 ? answer.Failure! : WalmartWire.DescribeError(answer.Status, answer.Body);
            if (answer.Status == 429)
            {
                Interlocked.Increment(ref Counters.Throttles);
                var wait = answer.ThrottleWait ?? answer.RetryAfter ?? Backoff.Delay(throttles + 1, TimeSpan.FromSeconds(1), RetryDelayCap, Random.Shared);
                if (++throttles > ThrottleRetriesMax || wait > ThrottleWaitMax)
                {
                    return new TokenReply(null, PublishStatus.Transient, $"Walmart throttled the token request: {text}");
                }
                _tokens.Defer(_time.GetUtcNow() + wait);
                continue;
            }
            Interlocked.Increment(ref Counters.Failures);
            if (answer.Status is >= 400 and < 500 and not 408)
            {
                // Walmart rejects the client id/secret: no retry fixes that, and the text never includes the secret.
                return new TokenReply(null, PublishStatus.Permanent, $"Walmart rejected the client credentials: {text}");
            }
            if (answer.Status is >= 200 and < 300)
            {
                text = WalmartWire.Bound($"The Walmart token answer has no access_token: {answer.Body}");
            }
            if (++transients > TransientRetriesMax)
            {
                return new TokenReply(null, PublishStatus.Transient, $"The Walmart token request failed: {text}");
            }
            await Task.Delay(Backoff.Delay(transients, RetryDelayBase, RetryDelayCap, Random.Shared), _time, ct).ConfigureAwait(false);
        }
    }

    private static PublishOutcome Transient(AtsUpdate update, string error) =>
        new(update.Sku, update.Version, PublishStatus.Transient, WalmartWire.Bound(error));

    /// <summary>What one HTTP exchange produced: a status (0 when no answer came), the bounded body and wait hints.</summary>
    private sealed record Answer(int Status, string Body, string? Failure, TimeSpan? ThrottleWait, TimeSpan? RetryAfter);

    /// <summary>The verdict of a call after retries.</summary>
    private sealed record Reply(PublishStatus Verdict, int Status, string Body, string? Error);

    private sealed record TokenReply(string? Token, PublishStatus Verdict, string? Error);

    private sealed record PendingFeed(string FeedId, DateTimeOffset SubmittedAt, Dictionary<string, (long Version, long Quantity)> Items);

    /// <summary>
    /// One of Walmart's separately limited APIs: its token bucket, and the earliest time Walmart lets the
    /// next call through (from <c>x-next-replenish-time</c> once <c>x-current-token-count</c> hits zero, or Retry-After).
    /// </summary>
    private sealed class Lane(string name, TokenBucket bucket)
    {
        public string Name { get; } = name;

        public TokenBucket Bucket { get; } = bucket;

        public DateTimeOffset NotBefore { get; private set; }

        public void Defer(DateTimeOffset until)
        {
            if (until > NotBefore)
            {
                NotBefore = until;
            }
        }

        public async Task WaitAsync(TimeProvider time, bool takeToken, CancellationToken ct)
        {
            var wait = NotBefore - time.GetUtcNow();
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, time, ct).ConfigureAwait(false);
            }
            if (takeToken)
            {
                await Bucket.TakeAsync(1, ct).ConfigureAwait(false);
            }
        }

        /// <summary>
        /// Aligns down to Walmart's own count (<c>x-current-token-count</c>) and, when it is spent, waits for
        /// <c>x-next-replenish-time</c>. Returns that wait when the bucket is empty (the throttle hint), or null.
        /// </summary>
        public TimeSpan? Observe(HttpResponseMessage response, TimeProvider time)
        {
            var count = Header(response, "x-current-token-count") is { } c
                && double.TryParse(c, NumberStyles.Float, CultureInfo.InvariantCulture, out var n) ? n : (double?)null;
            var replenish = ParseInstant(Header(response, "x-next-replenish-time") ?? Header(response, "x-next-replenishment-time"));
            if (count is { } tokens && tokens < Bucket.Available)
            {
                // Walmart's count wins when it is lower (another integration of the seller spends the same
                // allotment); a higher count never lifts the connector above its configured pace.
                Bucket.Observe(tokens);
            }
            if (count is not <= 0 || replenish is not { } at)
            {
                return null;
            }
            var wait = at + ReplenishMargin - time.GetUtcNow();
            if (wait <= TimeSpan.Zero)
            {
                return TimeSpan.Zero;
            }
            if (wait <= ThrottleWaitMax)
            {
                Defer(at + ReplenishMargin);
            }
            return wait;
        }

        private static string? Header(HttpResponseMessage response, string name) =>
            response.Headers.TryGetValues(name, out var values) ? values.FirstOrDefault() : null;

        /// <summary>Walmart's replenish time: epoch milliseconds (or seconds), or an HTTP/ISO date.</summary>
        private static DateTimeOffset? ParseInstant(string? value)
        {
            if (string.IsNullOrWhiteSpace(value))
            {
                return null;
            }
            if (long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var epoch))
            {
                return epoch > 100_000_000_000 ? DateTimeOffset.FromUnixTimeMilliseconds(epoch) : DateTimeOffset.FromUnixTimeSeconds(epoch);
            }
            return DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var instant) ? instant : null;
        }
    }
}
