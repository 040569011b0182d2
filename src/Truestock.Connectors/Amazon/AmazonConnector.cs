using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;

namespace Truestock.Connectors.Amazon;

/// <summary>
/// Publishes available-to-sell quantities to Amazon through the Selling Partner API (SP-API):
/// urgent updates one by one with the Listings Items API (patchListingsItem, seconds to apply),
/// the rest as one JSON_LISTINGS_FEED per call through the Feeds API (minutes to apply, but one
/// request for up to <see cref="BatchSizeMax"/> SKUs). Feeds have a tiny budget (createFeed: one
/// every two minutes, burst 5), so the connector spends it deliberately: when no feed can be sent,
/// it sends the highest-priority remaining items per item as far as the per-item budget allows and
/// returns Transient for the rest, so the hub's publisher retries them later. See
/// docs/connectors/amazon.md for the wire format, limits and error mapping.
/// </summary>
/// <remarks>
/// The Listings Items API offers no compare-and-set on quantities, so ordering between versions is
/// the publisher's job. The connector only guards against the reordering it could cause itself: a
/// feed that is still processing at Amazon after the connector stopped waiting could overwrite a
/// newer quantity sent later, so its SKUs are held (Transient) until Amazon reports it finished.
/// </remarks>
public sealed class AmazonConnector : IChannelConnector
{
    /// <summary>The most bytes of a processing report read, after decompression.</summary>
    private const int ReportBytesMax = 64 * 1024 * 1024;

    /// <summary>The most feeds the connector lets run past its wait; each holds its SKUs, so more would hold too many.</summary>
    private const int PendingFeedsMax = 8;

    /// <summary>How long a feed whose createFeed answer was lost (timeout, 5xx) holds its SKUs, in multiples of the feed wait.</summary>
    private const int UnconfirmedHoldFactor = 2;

    /// <summary>The longest a feed Amazon never reports finished holds its SKUs (feeds normally finish within minutes).</summary>
    private static readonly TimeSpan PendingHoldMax = TimeSpan.FromHours(24);

    private static readonly MediaTypeHeaderValue JsonContentType = new("application/json");

    private readonly AmazonSettings _settings;
    private readonly ConnectorContext _context;
    private readonly LwaTokenProvider _tokens;
    private readonly SpApiClient _api;
    private readonly SpOperation _patch;
    private readonly SpOperation _createFeedDocument;
    private readonly SpOperation _createFeed;
    private readonly SpOperation _getFeed;
    private readonly SpOperation _getFeedDocument;
    private readonly SpOperation _cancelFeed;
    private readonly SpOperation _document = new("feed document transfer", null);
    private readonly SemaphoreSlim _feedBudget = new(1, 1);
    private readonly Lock _pendingGate = new();
    private readonly List<PendingFeed> _pending = [];
    private readonly string _marketplaceQuery;

    private AmazonConnector(AmazonSettings settings, ConnectorContext context)
    {
        _settings = settings;
        _context = context;
        _tokens = new LwaTokenProvider(settings, context, Counters);
        _api = new SpApiClient(settings, context, Counters, _tokens);
        var time = context.Time;
        // Defaults are Amazon's documented usage plans (docs/connectors/amazon.md); the
        // x-amzn-RateLimit-Limit header realigns each rate to the seller's actual plan.
        _patch = new("patchListingsItem", new TokenBucket(settings.PatchBurst, settings.PatchRatePerSecond, time));
        _createFeedDocument = new("createFeedDocument", new TokenBucket(15, 0.5, time));
        // The header reports createFeed's plan, not JSON_LISTINGS_FEED's own (five per five
        // minutes), so it may lower the feed rate but never raise it above the configured one.
        _createFeed = new("createFeed", new TokenBucket(settings.FeedBurst, settings.FeedRatePerSecond, time), RateCeiling: settings.FeedRatePerSecond);
        _getFeed = new("getFeed", new TokenBucket(15, 2, time));
        _getFeedDocument = new("getFeedDocument", new TokenBucket(10, 0.0222, time));
        _cancelFeed = new("cancelFeed", new TokenBucket(15, 2, time));
        _marketplaceQuery = string.Join(",", settings.MarketplaceIds.Select(Uri.EscapeDataString));
    }

    /// <summary>The most updates one call takes: the feed size (default 10,000 messages; Amazon allows up to 25,000).</summary>
    public int BatchSizeMax => _settings.FeedMessagesMax;

    /// <inheritdoc />
    public ConnectorCounters Counters { get; } = new();

    /// <summary>Access tokens fetched so far (tests read it to see refreshes).</summary>
    internal int TokenRefreshes => Volatile.Read(ref _tokens.Refreshes);

    /// <summary>Feeds that ran past the connector's wait and still hold their SKUs.</summary>
    internal int PendingFeedCount
    {
        get
        {
            lock (_pendingGate)
            {
                return _pending.Count;
            }
        }
    }

    /// <summary>Validates the settings; returns null when valid, else a message naming the field.</summary>
    public static string? Validate(JsonElement settings)
    {
        AmazonSettings.Parse(settings, out var error);
        return error;
    }

    /// <summary>Creates the connector for valid settings (see <see cref="Validate"/>).</summary>
    public static IChannelConnector Create(JsonElement settings, ConnectorContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var parsed = AmazonSettings.Parse(settings, out var error)
            ?? throw new ArgumentException($"Invalid amazon connector settings for channel '{context.ChannelId}': {error}", nameof(settings));
        return new AmazonConnector(parsed, context);
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<PublishOutcome>> PublishAsync(IReadOnlyList<AtsUpdate> updates, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(updates);
        if (updates.Count > BatchSizeMax)
        {
            throw new ArgumentException($"At most {BatchSizeMax} updates per call; got {updates.Count}.", nameof(updates));
        }
        if (updates.Count == 0)
        {
            return [];
        }
        var outcomes = new PublishOutcome?[updates.Count];

        // One token request up front: with bad credentials the whole batch fails with one LWA
        // call instead of one per item.
        var token = await _tokens.GetAsync(cancellationToken).ConfigureAwait(false);
        if (token.Token is null)
        {
            return [.. updates.Select(u => new PublishOutcome(u.Sku, u.Version, token.FailureStatus, token.Error))];
        }

        var held = await SettlePendingFeedsAsync(updates, cancellationToken).ConfigureAwait(false);

        // Urgent items go one by one, in the publisher's order, within a bounded time; urgent
        // items beyond that join the feed ahead of the non-urgent ones.
        var urgent = new List<int>();
        var rest = new List<int>();
        for (var i = 0; i < updates.Count; i++)
        {
            (updates[i].Urgent ? urgent : rest).Add(i);
        }
        var urgentNow = Math.Min(urgent.Count, PerItemAllowance(_settings.UrgentTimeMax));
        await PatchEachAsync(updates, urgent.Take(urgentNow).ToList(), held, outcomes, _settings.UrgentTimeMax, cancellationToken).ConfigureAwait(false);
        rest.InsertRange(0, urgent.Skip(urgentNow));

        // Items of a feed that is still processing at Amazon wait for it: sending them now could
        // be overwritten by the older quantity in that feed.
        var sendable = new List<int>(rest.Count);
        foreach (var i in rest)
        {
            if (held.TryGetValue(updates[i].Sku, out var feed))
            {
                outcomes[i] = Outcome(updates[i], PublishStatus.Transient,
                    $"held: {feed} carries an older quantity for this SKU and is still processing at Amazon; sending now could be overwritten by it.");
            }
            else
            {
                sendable.Add(i);
            }
        }

        string? noFeed = null;
        if (sendable.Count < _settings.FeedMinMessages)
        {
            noFeed = "too few items for a feed";
        }
        else if (!await TryTakeFeedBudgetAsync(cancellationToken).ConfigureAwait(false))
        {
            noFeed = FeedBudgetText();
        }
        else if (!await PublishFeedAsync(updates, sendable, outcomes, cancellationToken).ConfigureAwait(false))
        {
            noFeed = "feed budget exhausted (Amazon throttled createFeed)";
        }
        if (noFeed is not null && sendable.Count > 0)
        {
            // No feed: as many of the highest-priority items as the per-item budget allows now,
            // Transient for the rest so the publisher retries them (and a later call may feed them).
            var allowance = Math.Min(sendable.Count, PerItemAllowance(_settings.PerItemTimeMax));
            await PatchEachAsync(updates, sendable.Take(allowance).ToList(), held, outcomes, _settings.PerItemTimeMax, cancellationToken).ConfigureAwait(false);
            foreach (var i in sendable.Skip(allowance))
            {
                outcomes[i] = Outcome(updates[i], PublishStatus.Transient,
                    $"not sent: {noFeed}, and this call's per-item budget (patchListingsItem, {_patch.Bucket!.RefillPerSecond:0.##}/s) is spent; retry later.");
            }
        }

        return [.. outcomes.Select((o, i) => o ?? Outcome(updates[i], PublishStatus.Transient, "not sent (internal: no outcome)."))];
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        _tokens.Dispose();
        _feedBudget.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>How many per-item requests the patch bucket allows within <paramref name="time"/> from now.</summary>
    private int PerItemAllowance(TimeSpan time)
    {
        var bucket = _patch.Bucket!;
        var tokens = Math.Floor(bucket.Available) + Math.Floor(bucket.RefillPerSecond * time.TotalSeconds);
        return (int)Math.Clamp(tokens, 0, int.MaxValue);
    }

    private string FeedBudgetText()
    {
        var bucket = _createFeed.Bucket!;
        var seconds = Math.Max(0, (1 - bucket.Available) / bucket.RefillPerSecond);
        return PendingFeedCount >= PendingFeedsMax
            ? $"{PendingFeedsMax} earlier feeds are still processing at Amazon"
            : string.Create(CultureInfo.InvariantCulture, $"feed budget exhausted (createFeed; next feed in about {seconds:0} s)");
    }

    /// <summary>Takes a createFeed token only when one is available now: waiting minutes for it would stall the publisher.</summary>
    private async Task<bool> TryTakeFeedBudgetAsync(CancellationToken cancellationToken)
    {
        if (PendingFeedCount >= PendingFeedsMax)
        {
            return false;
        }
        await _feedBudget.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_createFeed.Bucket!.Available < 1)
            {
                return false;
            }
            // The check and the take are serialised by _feedBudget, so this completes at once.
            await _createFeed.Bucket.TakeAsync(1, cancellationToken).ConfigureAwait(false);
            return true;
        }
        finally
        {
            _feedBudget.Release();
        }
    }

    // ---------------------------------------------------------------- per item (Listings Items API)

    /// <summary>
    /// Sends each update with patchListingsItem, a few in flight at once, paced by the patch
    /// bucket. The phase ends after <paramref name="timeMax"/> plus one request timeout: a rate
    /// Amazon lowered (x-amzn-RateLimit-Limit) or repeated throttles must not stall the call, so
    /// what is not answered by then is Transient.
    /// </summary>
    private async Task PatchEachAsync(
        IReadOnlyList<AtsUpdate> updates, List<int> indices, IReadOnlyDictionary<string, string> held, PublishOutcome?[] outcomes,
        TimeSpan timeMax, CancellationToken cancellationToken)
    {
        if (indices.Count == 0)
        {
            return;
        }
        var limit = timeMax + _settings.Timeout;
        var ranOut = string.Create(CultureInfo.InvariantCulture,
            $"no answer within this call's time for per-item requests ({limit.TotalSeconds:0.#} s; patchListingsItem paced at {_patch.Bucket!.RefillPerSecond:0.##}/s); retry later.");
        using var phase = new CancellationTokenSource(limit, _context.Time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, phase.Token);
        var options = new ParallelOptions { MaxDegreeOfParallelism = _settings.PatchConcurrencyMax, CancellationToken = linked.Token };
        try
        {
            await Parallel.ForEachAsync(indices, options, async (i, ct) =>
            {
                PublishOutcome outcome;
                try
                {
                    outcome = await PatchOneAsync(updates[i], ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    outcomes[i] = Outcome(updates[i], PublishStatus.Transient, ranOut);
                    return;
                }
                if (outcome.Status == PublishStatus.Accepted && held.TryGetValue(updates[i].Sku, out var feed))
                {
                    // Urgent quantities go out at once, but the feed may still overwrite them: the
                    // publisher's retry sends the quantity again once the feed has finished.
                    outcome = outcome with
                    {
                        Status = PublishStatus.Transient,
                        Error = $"sent, but {feed} carries an older quantity for this SKU and is still processing at Amazon; resend after it finishes.",
                    };
                }
                outcomes[i] = outcome;
            }).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // The phase's time ran out; the items it did not start get the same outcome below.
        }
        foreach (var i in indices)
        {
            outcomes[i] ??= Outcome(updates[i], PublishStatus.Transient, ranOut);
        }
    }

    /// <summary>PATCH /listings/2021-08-01/items/{sellerId}/{sku}: replace /attributes/fulfillment_availability.</summary>
    private async Task<PublishOutcome> PatchOneAsync(AtsUpdate update, CancellationToken cancellationToken)
    {
        var url = new Uri(_settings.BaseUrl,
            $"listings/2021-08-01/items/{Uri.EscapeDataString(_settings.SellerId)}/{Uri.EscapeDataString(update.Sku)}" +
            $"?marketplaceIds={_marketplaceQuery}&issueLocale={Uri.EscapeDataString(_settings.IssueLocale)}");
        var body = ListingsFeed.BuildPatchRequest(_settings, update.Quantity);
        var result = await _api.SendAsync(_patch, () => new HttpRequestMessage(HttpMethod.Patch, url) { Content = Json(body) },
            authenticated: true, idempotent: true, cancellationToken).ConfigureAwait(false);
        if (result.Response is not { } response)
        {
            return Outcome(update, result.FailureStatus, result.Error);
        }
        if ((int)response.Status >= 400)
        {
            // 400 (invalid input), 404 (unknown SKU), 413, 415: no retry fixes these.
            return Outcome(update, PublishStatus.Permanent, $"patchListingsItem answered {(int)response.Status}: {SpApiClient.ErrorText(response.Body)}");
        }
        return SubmissionOutcome(update, response.Body);
    }

    /// <summary>Maps a ListingsItemSubmissionResponse: ACCEPTED, or INVALID with its issues.</summary>
    private static PublishOutcome SubmissionOutcome(AtsUpdate update, string body)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            var root = document.RootElement;
            var status = SpApiClient.StringOf(root, "status");
            if (status == "ACCEPTED")
            {
                return Outcome(update, PublishStatus.Accepted, null);
            }
            var issues = new List<FeedIssue>();
            if (root.TryGetProperty("issues", out var list) && list.ValueKind == JsonValueKind.Array)
            {
                foreach (var issue in list.EnumerateArray())
                {
                    issues.Add(new FeedIssue(null, SpApiClient.StringOf(issue, "code"), SpApiClient.StringOf(issue, "severity") ?? "ERROR",
                        SpApiClient.StringOf(issue, "message") ?? "(no message)"));
                }
            }
            var errors = issues.Where(i => i.Severity == "ERROR").ToList();
            var text = ListingsFeed.IssueText(errors.Count > 0 ? errors : issues);
            return status == "INVALID"
                ? Outcome(update, PublishStatus.Permanent, $"patchListingsItem INVALID: {text}")
                : Outcome(update, PublishStatus.Transient, $"patchListingsItem answered status '{status}': {text}");
        }
        catch (JsonException)
        {
            return Outcome(update, PublishStatus.Transient, $"patchListingsItem answered an unreadable body: {SpApiClient.Truncate(body)}");
        }
    }

    // ---------------------------------------------------------------- feed (Feeds API, JSON_LISTINGS_FEED)

    /// <summary>
    /// Sends the items as one JSON_LISTINGS_FEED and maps the processing report to outcomes.
    /// Returns false, with no outcome set, when Amazon throttled createFeed, so the caller can
    /// fall back to per-item requests.
    /// </summary>
    private async Task<bool> PublishFeedAsync(IReadOnlyList<AtsUpdate> updates, List<int> indices, PublishOutcome?[] outcomes, CancellationToken cancellationToken)
    {
        var items = indices.Select(i => updates[i]).ToList();
        void All(PublishStatus status, string error)
        {
            foreach (var i in indices)
            {
                outcomes[i] = Outcome(updates[i], status, error);
            }
        }

        // 1. createFeedDocument: where to upload the feed.
        var specification = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, string> { ["contentType"] = ListingsFeed.ContentType });
        var created = await _api.SendAsync(_createFeedDocument,
            () => new HttpRequestMessage(HttpMethod.Post, new Uri(_settings.BaseUrl, "feeds/2021-06-30/documents")) { Content = Json(specification) },
            authenticated: true, idempotent: true, cancellationToken).ConfigureAwait(false);
        if (!TryRead(created, "createFeedDocument", out var documentAnswer, out var failure))
        {
            All(failure.Status, failure.Error);
            return true;
        }
        var documentId = SpApiClient.StringOf(documentAnswer, "feedDocumentId");
        var uploadUrl = SpApiClient.StringOf(documentAnswer, "url");
        if (documentId is null || !Uri.TryCreate(uploadUrl, UriKind.Absolute, out var upload))
        {
            All(PublishStatus.Transient, "createFeedDocument answered without feedDocumentId or url.");
            return true;
        }

        // 2. Upload the feed to the presigned URL (not an SP-API call: no access token, no usage plan).
        var feed = ListingsFeed.Build(_settings, items);
        var uploaded = await _api.SendAsync(_document, () =>
            {
                var content = new ByteArrayContent(feed);
                content.Headers.TryAddWithoutValidation("Content-Type", ListingsFeed.ContentType);
                return new HttpRequestMessage(HttpMethod.Put, upload) { Content = content };
            },
            authenticated: false, idempotent: true, cancellationToken).ConfigureAwait(false);
        if (uploaded.Response is not { } uploadResponse || (int)uploadResponse.Status >= 300)
        {
            All(PublishStatus.Transient, uploaded.Error ?? $"feed document upload answered {(int)uploaded.Response!.Status}: {SpApiClient.Truncate(uploaded.Response.Body)}");
            return true;
        }

        // 3. createFeed, with the budget token TryTakeFeedBudgetAsync took. Not retried after a
        // timeout or 5xx (the feed may exist already, and a second one could land after newer
        // quantities), nor after a 429 (the budget refills in minutes: the items go per item).
        var specificationOfFeed = JsonSerializer.SerializeToUtf8Bytes(new CreateFeedSpecification("JSON_LISTINGS_FEED", _settings.MarketplaceIds, documentId));
        var createdFeed = await _api.SendAsync(_createFeed,
            () => new HttpRequestMessage(HttpMethod.Post, new Uri(_settings.BaseUrl, "feeds/2021-06-30/feeds")) { Content = Json(specificationOfFeed) },
            authenticated: true, idempotent: false, cancellationToken, prepaid: true, throttleRetriesMax: 0).ConfigureAwait(false);
        if (createdFeed.Throttled)
        {
            return false;
        }
        if (!TryRead(createdFeed, "createFeed", out var feedAnswer, out failure))
        {
            if (createdFeed.MayHaveReachedServer)
            {
                // The request may have reached Amazon: hold its SKUs for a while as if the feed ran.
                AddPending(new PendingFeed(null, items.Select(u => u.Sku).ToHashSet(StringComparer.Ordinal),
                    _context.Time.GetUtcNow() + (_settings.FeedWaitMax * UnconfirmedHoldFactor)));
            }
            All(failure.Status, failure.Error);
            return true;
        }
        var feedId = SpApiClient.StringOf(feedAnswer, "feedId");
        if (feedId is null)
        {
            All(PublishStatus.Transient, "createFeed answered without feedId.");
            return true;
        }

        // 4. Poll getFeed until it is final or the wait is over.
        var (status, resultDocumentId) = await WaitForFeedAsync(feedId, items, cancellationToken).ConfigureAwait(false);
        var waited = _settings.FeedWaitMax.TotalSeconds.ToString("0.#", CultureInfo.InvariantCulture);
        if (status is not ("DONE" or "FATAL" or "CANCELLED"))
        {
            var cancelled = status == "IN_QUEUE" && await TryCancelFeedAsync(feedId, cancellationToken).ConfigureAwait(false);
            if (!cancelled)
            {
                AddPending(new PendingFeed(feedId, items.Select(u => u.Sku).ToHashSet(StringComparer.Ordinal), _context.Time.GetUtcNow() + PendingHoldMax));
            }
            All(PublishStatus.Transient, $"feed {feedId} not DONE within {waited} s (last status {status ?? "unknown"}); " +
                (cancelled ? "it was cancelled." : "its SKUs are held until Amazon finishes it."));
            return true;
        }
        if (status == "CANCELLED")
        {
            All(PublishStatus.Transient, $"feed {feedId} was CANCELLED before processing.");
            return true;
        }

        // 5. Read the processing report and map each message to its update.
        var report = resultDocumentId is null ? null : await ReadReportAsync(resultDocumentId, cancellationToken).ConfigureAwait(false);
        if (report is null)
        {
            All(PublishStatus.Transient, $"feed {feedId} is {status} but its processing report could not be read" +
                (resultDocumentId is null ? " (no resultFeedDocumentId)." : "."));
            return true;
        }
        var feedErrors = report.FeedLevel.Where(i => i.Severity == "ERROR").ToList();
        for (var k = 0; k < indices.Count; k++)
        {
            var update = updates[indices[k]];
            var messageErrors = report.ByMessage.TryGetValue(k + 1, out var issues) ? issues.Where(i => i.Severity == "ERROR").ToList() : [];
            outcomes[indices[k]] = messageErrors.Count > 0
                ? Outcome(update, PublishStatus.Permanent, $"JSON_LISTINGS_FEED {feedId} message {k + 1}: {ListingsFeed.IssueText(messageErrors)}")
                : status == "FATAL"
                    ? Outcome(update, PublishStatus.Transient, $"feed {feedId} ended FATAL (some, none or all messages applied)" +
                        (feedErrors.Count > 0 ? $": {ListingsFeed.IssueText(feedErrors)}" : "."))
                    : feedErrors.Count > 0
                        ? Outcome(update, PublishStatus.Transient, $"feed {feedId} reported feed-level errors: {ListingsFeed.IssueText(feedErrors)}")
                        : Outcome(update, PublishStatus.Accepted, null);
        }
        return true;
    }

    /// <summary>Polls getFeed every FeedPollInterval until DONE/FATAL/CANCELLED or FeedWaitMax is over.</summary>
    private async Task<(string? Status, string? ResultDocumentId)> WaitForFeedAsync(string feedId, List<AtsUpdate> items, CancellationToken cancellationToken)
    {
        var deadline = _context.Time.GetUtcNow() + _settings.FeedWaitMax;
        string? status = "IN_QUEUE";
        string? result = null;
        try
        {
            while (true)
            {
                var remaining = deadline - _context.Time.GetUtcNow();
                if (remaining <= TimeSpan.Zero)
                {
                    return (status, result);
                }
                await Task.Delay(remaining < _settings.FeedPollInterval ? remaining : _settings.FeedPollInterval, _context.Time, cancellationToken).ConfigureAwait(false);
                if (await GetFeedAsync(feedId, cancellationToken).ConfigureAwait(false) is { } feed)
                {
                    (status, result) = feed;
                    if (status is "DONE" or "FATAL" or "CANCELLED")
                    {
                        return (status, result);
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The hub is stopping: the feed keeps running at Amazon, so its SKUs stay held.
            AddPending(new PendingFeed(feedId, items.Select(u => u.Sku).ToHashSet(StringComparer.Ordinal), _context.Time.GetUtcNow() + PendingHoldMax));
            throw;
        }
    }

    /// <summary>GET /feeds/2021-06-30/feeds/{feedId}; null when the call failed.</summary>
    private async Task<(string? Status, string? ResultDocumentId)?> GetFeedAsync(string feedId, CancellationToken cancellationToken)
    {
        var url = new Uri(_settings.BaseUrl, $"feeds/2021-06-30/feeds/{Uri.EscapeDataString(feedId)}");
        var result = await _api.SendAsync(_getFeed, () => new HttpRequestMessage(HttpMethod.Get, url),
            authenticated: true, idempotent: true, cancellationToken).ConfigureAwait(false);
        if (!TryRead(result, "getFeed", out var feed, out _))
        {
            return null;
        }
        return (SpApiClient.StringOf(feed, "processingStatus"), SpApiClient.StringOf(feed, "resultFeedDocumentId"));
    }

    /// <summary>DELETE /feeds/2021-06-30/feeds/{feedId}: only feeds still IN_QUEUE can be cancelled.</summary>
    private async Task<bool> TryCancelFeedAsync(string feedId, CancellationToken cancellationToken)
    {
        var url = new Uri(_settings.BaseUrl, $"feeds/2021-06-30/feeds/{Uri.EscapeDataString(feedId)}");
        var result = await _api.SendAsync(_cancelFeed, () => new HttpRequestMessage(HttpMethod.Delete, url),
            authenticated: true, idempotent: true, cancellationToken).ConfigureAwait(false);
        return result.Response is { } response && (int)response.Status is >= 200 and < 300;
    }

    /// <summary>getFeedDocument, then download (and gunzip) the processing report.</summary>
    private async Task<FeedReport?> ReadReportAsync(string documentId, CancellationToken cancellationToken)
    {
        var url = new Uri(_settings.BaseUrl, $"feeds/2021-06-30/documents/{Uri.EscapeDataString(documentId)}");
        var result = await _api.SendAsync(_getFeedDocument, () => new HttpRequestMessage(HttpMethod.Get, url),
            authenticated: true, idempotent: true, cancellationToken).ConfigureAwait(false);
        if (!TryRead(result, "getFeedDocument", out var document, out _)
            || !Uri.TryCreate(SpApiClient.StringOf(document, "url"), UriKind.Absolute, out var download))
        {
            return null;
        }
        var compression = SpApiClient.StringOf(document, "compressionAlgorithm");
        var downloaded = await _api.SendAsync(_document, () => new HttpRequestMessage(HttpMethod.Get, download),
            authenticated: false, idempotent: true, cancellationToken, ReportBytesMax, keepBytes: true).ConfigureAwait(false);
        if (downloaded.Response is not { Bytes: { } bytes } response || (int)response.Status >= 300)
        {
            return null;
        }
        try
        {
            return ListingsFeed.ParseReport(compression == "GZIP" ? ListingsFeed.Gunzip(bytes, ReportBytesMax) : bytes);
        }
        catch (Exception ex) when (ex is InvalidDataException or ResponseTooLargeException)
        {
            Interlocked.Increment(ref Counters.Failures);
            return null;
        }
    }

    // ---------------------------------------------------------------- feeds that outlive a call

    /// <summary>
    /// Asks Amazon about earlier feeds that still hold any of these SKUs, forgets the finished
    /// ones and returns the SKUs still held, with the feed holding each.
    /// </summary>
    private async Task<IReadOnlyDictionary<string, string>> SettlePendingFeedsAsync(IReadOnlyList<AtsUpdate> updates, CancellationToken cancellationToken)
    {
        List<PendingFeed> relevant;
        var now = _context.Time.GetUtcNow();
        lock (_pendingGate)
        {
            _pending.RemoveAll(p => p.HoldUntil <= now);
            if (_pending.Count == 0)
            {
                return new Dictionary<string, string>();
            }
            relevant = _pending.Where(p => updates.Any(u => p.Skus.Contains(u.Sku))).ToList();
        }
        var held = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var pending in relevant)
        {
            if (pending.FeedId is { } feedId
                && await GetFeedAsync(feedId, cancellationToken).ConfigureAwait(false) is { Status: "DONE" or "FATAL" or "CANCELLED" })
            {
                lock (_pendingGate)
                {
                    _pending.Remove(pending);
                }
                continue;
            }
            var name = pending.FeedId is null ? "a feed whose createFeed answer was lost" : $"feed {pending.FeedId}";
            foreach (var update in updates)
            {
                if (pending.Skus.Contains(update.Sku))
                {
                    held.TryAdd(update.Sku, name);
                }
            }
        }
        return held;
    }

    private void AddPending(PendingFeed feed)
    {
        lock (_pendingGate)
        {
            if (!_pending.Any(p => p.FeedId is not null && p.FeedId == feed.FeedId))
            {
                _pending.Add(feed);
            }
        }
    }

    // ---------------------------------------------------------------- helpers

    /// <summary>Reads a 2xx JSON object answer; otherwise says why the step failed (4xx are permanent).</summary>
    private static bool TryRead(SpResult result, string operation, out JsonElement answer, out (PublishStatus Status, string Error) failure)
    {
        answer = default;
        if (result.Response is not { } response)
        {
            failure = (result.FailureStatus, result.Error!);
            return false;
        }
        if ((int)response.Status >= 400)
        {
            failure = (response.Status == HttpStatusCode.NotFound ? PublishStatus.Transient : PublishStatus.Permanent,
                $"{operation} answered {(int)response.Status}: {SpApiClient.ErrorText(response.Body)}");
            return false;
        }
        try
        {
            using var document = JsonDocument.Parse(response.Body);
            if (document.RootElement.ValueKind == JsonValueKind.Object)
            {
                answer = document.RootElement.Clone();
                failure = default;
                return true;
            }
        }
        catch (JsonException)
        {
            // Falls through to the failure below.
        }
        failure = (PublishStatus.Transient, $"{operation} answered an unreadable body: {SpApiClient.Truncate(response.Body)}");
        return false;
    }

    private static ByteArrayContent Json(byte[] body)
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = JsonContentType;
        return content;
    }

    private static PublishOutcome Outcome(AtsUpdate update, PublishStatus status, string? error) =>
        new(update.Sku, update.Version, status, status == PublishStatus.Accepted ? null : error);

    /// <summary>A feed that outlived the call that sent it; its SKUs are held until it finishes.</summary>
    /// <param name="FeedId">Amazon's feed id; null when createFeed's answer was lost and the feed may or may not exist.</param>
    /// <param name="Skus">The SKUs in the feed.</param>
    /// <param name="HoldUntil">When to stop holding the SKUs even if Amazon never reports the feed finished.</param>
    private sealed record PendingFeed(string? FeedId, HashSet<string> Skus, DateTimeOffset HoldUntil);

    /// <summary>The createFeed request body (CreateFeedSpecification).</summary>
    private sealed record CreateFeedSpecification(
        [property: System.Text.Json.Serialization.JsonPropertyName("feedType")] string FeedType,
        [property: System.Text.Json.Serialization.JsonPropertyName("marketplaceIds")] IReadOnlyList<string> MarketplaceIds,
        [property: System.Text.Json.Serialization.JsonPropertyName("inputFeedDocumentId")] string InputFeedDocumentId);
}
