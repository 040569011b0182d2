using System.Text.Json;
using Truestock.Connectors.Emulators;
using Truestock.Connectors.Walmart;

namespace Truestock.Connectors.Tests;

public sealed class WalmartConnectorTests
{
    /// <summary>Fast feed processing and polling, so feed tests take well under a second or two.</summary>
    private static WalmartEmulatorOptions Fast(Func<WalmartEmulatorOptions, WalmartEmulatorOptions>? more = null)
    {
        var options = new WalmartEmulatorOptions { FeedProcessingDelay = TimeSpan.FromMilliseconds(200) };
        return more is null ? options : more(options);
    }

    private const string FastPolling = "\"feedPollIntervalSeconds\": 0.05, \"feedPollAttemptsMax\": 100";

    [Fact]
    public async Task urgent_update_goes_out_as_a_single_item_inventory_update()
    {
        await using var h = await Harness.StartAsync(Fast());
        h.Emulator.AddListing("SKU-1", 7);

        var outcomes = await h.PublishAsync(new AtsUpdate("SKU-1", 0, 3, Urgent: true));

        Assert.Equal(new PublishOutcome("SKU-1", 3, PublishStatus.Accepted), Assert.Single(outcomes));
        Assert.Equal(0, h.Emulator.QuantityOf("SKU-1"));
        Assert.Equal(1, h.Emulator.InventoryCalls);
        Assert.Equal(0, h.Emulator.FeedsSubmitted);
        Assert.Null(h.Emulator.ShipNodeOf("SKU-1"));
    }

    [Fact]
    public async Task non_urgent_updates_go_out_as_one_inventory_feed_and_take_each_items_result()
    {
        await using var h = await Harness.StartAsync(Fast(), FastPolling);
        var updates = Enumerable.Range(0, 600).Select(i => new AtsUpdate($"SKU-{i}", i % 37, 1, Urgent: false)).ToArray();
        foreach (var update in updates)
        {
            h.Emulator.AddListing(update.Sku, 1000);
        }

        var outcomes = await h.PublishAsync(updates);

        AssertOnePerUpdate(updates, outcomes);
        Assert.All(outcomes, o => Assert.Equal(PublishStatus.Accepted, o.Status));
        AssertConverged(h.Emulator, updates);
        Assert.Equal(1, h.Emulator.FeedsSubmitted);
        Assert.Equal(0, h.Emulator.InventoryCalls);
        Assert.Equal(600, h.Emulator.UpdatesApplied);
    }

    [Fact]
    public async Task a_burst_of_hundreds_converges_with_few_throttles()
    {
        await using var h = await Harness.StartAsync(
            Fast(o => new WalmartEmulatorOptions { FeedProcessingDelay = o.FeedProcessingDelay, InventoryCallsPerWindow = 100, InventoryWindow = TimeSpan.FromSeconds(1) }),
            FastPolling + ", \"inventoryCallsPerMinute\": 6000");
        var urgent = Enumerable.Range(0, 250).Select(i => new AtsUpdate($"U-{i}", 0, 5, Urgent: true));
        var normal = Enumerable.Range(0, 500).Select(i => new AtsUpdate($"N-{i}", 100 + i, 5, Urgent: false));
        var updates = urgent.Concat(normal).ToArray();
        foreach (var update in updates)
        {
            h.Emulator.AddListing(update.Sku, 9);
        }

        var outcomes = await h.PublishAsync(updates);

        AssertOnePerUpdate(updates, outcomes);
        Assert.All(outcomes, o => Assert.Equal(PublishStatus.Accepted, o.Status));
        AssertConverged(h.Emulator, updates);
        Assert.InRange(h.Emulator.ThrottledResponses, 0, 5);
        Assert.Equal(1, h.Emulator.FeedsSubmitted);
    }

    [Fact]
    public async Task walmart_rate_headers_pace_item_updates_when_walmart_allows_fewer_than_configured()
    {
        // The connector believes it may send 100 a second; Walmart allows 10. x-current-token-count and
        // x-next-replenish-time must hold it back before Walmart has to throttle more than a handful of times.
        await using var h = await Harness.StartAsync(
            Fast(o => new WalmartEmulatorOptions { InventoryCallsPerWindow = 10, InventoryWindow = TimeSpan.FromSeconds(1) }),
            "\"inventoryCallsPerMinute\": 6000");
        var updates = Enumerable.Range(0, 30).Select(i => new AtsUpdate($"SKU-{i}", i, 2, Urgent: true)).ToArray();
        foreach (var update in updates)
        {
            h.Emulator.AddListing(update.Sku, 50);
        }

        var outcomes = await h.PublishAsync(updates);

        Assert.All(outcomes, o => Assert.Equal(PublishStatus.Accepted, o.Status));
        AssertConverged(h.Emulator, updates);
        Assert.InRange(h.Emulator.ThrottledResponses, 0, 3);
    }

    [Fact]
    public async Task throttled_item_update_is_retried_after_walmart_replenishes()
    {
        await using var h = await Harness.StartAsync(Fast());
        h.Emulator.AddListing("SKU-1", 5);
        h.Emulator.ThrottleNext(2);

        var outcome = Assert.Single(await h.PublishAsync(new AtsUpdate("SKU-1", 1, 2, Urgent: true)));

        Assert.Equal(PublishStatus.Accepted, outcome.Status);
        Assert.Equal(1, h.Emulator.QuantityOf("SKU-1"));
        Assert.Equal(2, h.Emulator.ThrottledResponses);
        Assert.Equal(2, Interlocked.Read(ref h.Connector.Counters.Throttles));
        Assert.Equal(3, h.Emulator.InventoryCalls);
    }

    [Fact]
    public async Task persistent_throttling_ends_transient_with_walmarts_error()
    {
        await using var h = await Harness.StartAsync(Fast());
        h.Emulator.AddListing("SKU-1", 5);
        h.Emulator.ThrottleNext(50);

        var outcome = Assert.Single(await h.PublishAsync(new AtsUpdate("SKU-1", 1, 2, Urgent: true)));

        Assert.Equal(PublishStatus.Transient, outcome.Status);
        Assert.Contains("REQUEST_THRESHOLD_VIOLATED", outcome.Error, StringComparison.Ordinal);
        Assert.Equal(5, h.Emulator.QuantityOf("SKU-1"));
        Assert.Equal(WalmartConnector.ThrottleRetriesMax + 1, h.Emulator.ThrottledResponses);
    }

    [Fact]
    public async Task unknown_sku_is_permanent_with_walmarts_error_on_an_item_update()
    {
        await using var h = await Harness.StartAsync(Fast());

        var outcome = Assert.Single(await h.PublishAsync(new AtsUpdate("NOT-LISTED", 4, 1, Urgent: true)));

        Assert.Equal(PublishStatus.Permanent, outcome.Status);
        Assert.Contains("HTTP 404", outcome.Error, StringComparison.Ordinal);
        Assert.Contains("CONTENT_NOT_FOUND.GMP_INVENTORY_API: Item not found", outcome.Error, StringComparison.Ordinal);
        Assert.Null(h.Emulator.QuantityOf("NOT-LISTED"));
    }

    [Fact]
    public async Task unknown_sku_in_a_feed_is_permanent_while_the_others_are_accepted()
    {
        await using var h = await Harness.StartAsync(Fast(), FastPolling);
        var updates = Enumerable.Range(0, 20).Select(i => new AtsUpdate($"SKU-{i}", 3, 1, Urgent: false)).ToArray();
        foreach (var update in updates.Skip(1))
        {
            h.Emulator.AddListing(update.Sku);
        }

        var outcomes = await h.PublishAsync(updates);

        AssertOnePerUpdate(updates, outcomes);
        Assert.Equal(PublishStatus.Permanent, outcomes[0].Status);
        Assert.Contains("DATA_ERROR", outcomes[0].Error, StringComparison.Ordinal);
        Assert.Contains("CONTENT_NOT_FOUND.GMP_INVENTORY_API", outcomes[0].Error, StringComparison.Ordinal);
        Assert.All(outcomes.Skip(1), o => Assert.Equal(PublishStatus.Accepted, o.Status));
        AssertConverged(h.Emulator, updates.Skip(1));
    }

    [Fact]
    public async Task bad_client_credentials_are_permanent_with_walmarts_error_and_no_secret_in_it()
    {
        await using var h = await Harness.StartAsync(Fast(), credentials: name => name == "clientId" ? "emulator-client-id" : "wrong-secret-value");
        h.Emulator.AddListing("SKU-1", 5);

        var outcome = Assert.Single(await h.PublishAsync(new AtsUpdate("SKU-1", 1, 2, Urgent: true)));

        Assert.Equal(PublishStatus.Permanent, outcome.Status);
        Assert.Contains("UNAUTHORIZED.GMP_GATEWAY_API", outcome.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("wrong-secret-value", outcome.Error, StringComparison.Ordinal);
        Assert.Equal(5, h.Emulator.QuantityOf("SKU-1"));
        Assert.Equal(0, h.Emulator.TokensIssued);
    }

    [Fact]
    public async Task missing_credentials_are_permanent_without_calling_walmart()
    {
        await using var h = await Harness.StartAsync(Fast(), credentials: _ => null);

        var outcome = Assert.Single(await h.PublishAsync(new AtsUpdate("SKU-1", 1, 2, Urgent: true)));

        Assert.Equal(PublishStatus.Permanent, outcome.Status);
        Assert.Contains("clientId", outcome.Error, StringComparison.Ordinal);
        Assert.Equal(0, h.Emulator.Requests);
    }

    [Fact]
    public async Task access_token_is_reused_across_calls()
    {
        await using var h = await Harness.StartAsync(Fast());
        h.Emulator.AddListing("SKU-1");

        for (var version = 1; version <= 3; version++)
        {
            Assert.Equal(PublishStatus.Accepted, Assert.Single(await h.PublishAsync(new AtsUpdate("SKU-1", version, version, Urgent: true))).Status);
        }

        Assert.Equal(1, h.Emulator.TokensIssued);
        Assert.Equal(3, h.Emulator.QuantityOf("SKU-1"));
    }

    [Fact]
    public async Task expired_access_token_is_refreshed_once_and_the_update_goes_through()
    {
        await using var h = await Harness.StartAsync(Fast());
        h.Emulator.AddListing("SKU-1");
        await h.PublishAsync(new AtsUpdate("SKU-1", 1, 1, Urgent: true));
        h.Emulator.ExpireAccessTokens();

        var outcome = Assert.Single(await h.PublishAsync(new AtsUpdate("SKU-1", 2, 2, Urgent: true)));

        Assert.Equal(PublishStatus.Accepted, outcome.Status);
        Assert.Equal(2, h.Emulator.QuantityOf("SKU-1"));
        Assert.Equal(2, h.Emulator.TokensIssued);
    }

    [Fact]
    public async Task server_error_is_retried_and_then_accepted()
    {
        await using var h = await Harness.StartAsync(Fast());
        h.Emulator.AddListing("SKU-1");
        h.Emulator.Faults.FailNext(1);

        var outcome = Assert.Single(await h.PublishAsync(new AtsUpdate("SKU-1", 8, 1, Urgent: true)));

        Assert.Equal(PublishStatus.Accepted, outcome.Status);
        Assert.Equal(8, h.Emulator.QuantityOf("SKU-1"));
        Assert.Equal(1, Interlocked.Read(ref h.Connector.Counters.Failures));
    }

    [Fact]
    public async Task persistent_server_errors_give_transient_with_walmarts_error()
    {
        await using var h = await Harness.StartAsync(Fast());
        h.Emulator.AddListing("SKU-1", 2);
        h.Emulator.Faults.FailNext(100);

        var outcome = Assert.Single(await h.PublishAsync(new AtsUpdate("SKU-1", 8, 1, Urgent: true)));

        Assert.Equal(PublishStatus.Transient, outcome.Status);
        Assert.Contains("HTTP 503 SYSTEM_ERROR.GMP_GATEWAY_API", outcome.Error, StringComparison.Ordinal);
        Assert.Equal(2, h.Emulator.QuantityOf("SKU-1"));
    }

    [Fact]
    public async Task timeouts_give_transient()
    {
        await using var h = await Harness.StartAsync(Fast(), "\"timeoutSeconds\": 0.3");
        h.Emulator.AddListing("SKU-1", 2);
        // The token call is not subject to faults, so all of these hit the inventory update.
        h.Emulator.Faults.TimeOutNext(WalmartConnector.TransientRetriesMax + 1);

        var outcome = Assert.Single(await h.PublishAsync(new AtsUpdate("SKU-1", 8, 1, Urgent: true)));

        Assert.Equal(PublishStatus.Transient, outcome.Status);
        Assert.Contains("timed out", outcome.Error, StringComparison.Ordinal);
        Assert.Equal(2, h.Emulator.QuantityOf("SKU-1"));
    }

    [Fact]
    public async Task feed_item_with_a_system_error_is_transient()
    {
        await using var h = await Harness.StartAsync(Fast(), FastPolling);
        var updates = Enumerable.Range(0, 12).Select(i => new AtsUpdate($"SKU-{i}", 6, 1, Urgent: false)).ToArray();
        foreach (var update in updates)
        {
            h.Emulator.AddListing(update.Sku);
        }
        h.Emulator.SystemErrorNextFeedItems(1);

        var outcomes = await h.PublishAsync(updates);

        Assert.Equal(PublishStatus.Transient, outcomes[0].Status);
        Assert.Contains("SYSTEM_ERROR", outcomes[0].Error, StringComparison.Ordinal);
        Assert.All(outcomes.Skip(1), o => Assert.Equal(PublishStatus.Accepted, o.Status));
    }

    [Fact]
    public async Task spent_feed_budget_sends_non_urgent_updates_item_by_item_when_the_item_budget_clearly_allows()
    {
        await using var h = await Harness.StartAsync(Fast(o => new WalmartEmulatorOptions { FeedProcessingDelay = o.FeedProcessingDelay, FeedsPerWindow = 1 }),
            FastPolling + ", \"feedsPerHour\": 1");
        var first = Enumerable.Range(0, 20).Select(i => new AtsUpdate($"A-{i}", 1, 1, Urgent: false)).ToArray();
        var second = Enumerable.Range(0, 20).Select(i => new AtsUpdate($"B-{i}", 2, 1, Urgent: false)).ToArray();
        foreach (var update in first.Concat(second))
        {
            h.Emulator.AddListing(update.Sku);
        }

        var a = await h.PublishAsync(first);
        var b = await h.PublishAsync(second);

        Assert.All(a.Concat(b), o => Assert.Equal(PublishStatus.Accepted, o.Status));
        AssertConverged(h.Emulator, first.Concat(second));
        Assert.Equal(1, h.Emulator.FeedsSubmitted);
        Assert.Equal(20, h.Emulator.InventoryCalls);
        Assert.Equal(0, h.Emulator.ThrottledResponses);
    }

    [Fact]
    public async Task spent_feed_budget_without_item_room_returns_transient_for_non_urgent_updates_only()
    {
        await using var h = await Harness.StartAsync(Fast(), FastPolling + ", \"feedsPerHour\": 1, \"inventoryCallsPerMinute\": 20");
        var first = Enumerable.Range(0, 20).Select(i => new AtsUpdate($"A-{i}", 1, 1, Urgent: false)).ToArray();
        var second = new[] { new AtsUpdate("URGENT", 0, 1, Urgent: true) }
            .Concat(Enumerable.Range(0, 20).Select(i => new AtsUpdate($"B-{i}", 2, 1, Urgent: false))).ToArray();
        foreach (var update in first.Concat(second))
        {
            h.Emulator.AddListing(update.Sku, 9);
        }

        await h.PublishAsync(first);
        var outcomes = await h.PublishAsync(second);

        AssertOnePerUpdate(second, outcomes);
        Assert.Equal(PublishStatus.Accepted, outcomes[0].Status);
        Assert.Equal(0, h.Emulator.QuantityOf("URGENT"));
        Assert.All(outcomes.Skip(1), o =>
        {
            Assert.Equal(PublishStatus.Transient, o.Status);
            Assert.Contains("feed budget", o.Error, StringComparison.Ordinal);
        });
        Assert.Equal(1, h.Emulator.FeedsSubmitted);
        Assert.Equal(9, h.Emulator.QuantityOf("B-0"));
    }

    [Fact]
    public async Task walmart_feed_throttle_is_honoured_and_no_feed_is_tried_until_walmart_replenishes()
    {
        // A restarted hub knows nothing of the feeds its previous run spent; Walmart's 429 and headers tell it.
        await using var h = await Harness.StartAsync(Fast(o => new WalmartEmulatorOptions { FeedProcessingDelay = o.FeedProcessingDelay, FeedsPerWindow = 1 }),
            FastPolling);
        var batches = Enumerable.Range(0, 3)
            .Select(b => Enumerable.Range(0, 15).Select(i => new AtsUpdate($"B{b}-{i}", b + i, 1, Urgent: false)).ToArray())
            .ToArray();
        foreach (var update in batches.SelectMany(u => u))
        {
            h.Emulator.AddListing(update.Sku, 99);
        }
        Assert.All(await h.PublishAsync(batches[0]), o => Assert.Equal(PublishStatus.Accepted, o.Status));
        await using var restarted = h.NewConnector(FastPolling);

        var outcomes = new List<PublishOutcome>();
        outcomes.AddRange(await restarted.PublishAsync(batches[1], CancellationToken.None));
        outcomes.AddRange(await restarted.PublishAsync(batches[2], CancellationToken.None));

        // The second batch hits Walmart's feed limit and falls back to item updates; the third does not try a feed at all.
        Assert.All(outcomes, o => Assert.Equal(PublishStatus.Accepted, o.Status));
        AssertConverged(h.Emulator, batches.SelectMany(u => u));
        Assert.Equal(1, h.Emulator.FeedsSubmitted);
        Assert.Equal(1, h.Emulator.ThrottledResponses);
        Assert.Equal(1, Interlocked.Read(ref restarted.Counters.Throttles));
        Assert.Equal(30, h.Emulator.InventoryCalls);
    }

    [Fact]
    public async Task feed_still_processing_is_answered_later_without_a_second_feed()
    {
        await using var h = await Harness.StartAsync(
            new WalmartEmulatorOptions { FeedProcessingDelay = TimeSpan.FromMilliseconds(800) },
            "\"feedPollIntervalSeconds\": 0.05, \"feedPollAttemptsMax\": 2");
        var updates = Enumerable.Range(0, 15).Select(i => new AtsUpdate($"SKU-{i}", i, 4, Urgent: false)).ToArray();
        foreach (var update in updates)
        {
            h.Emulator.AddListing(update.Sku, 77);
        }

        var first = await h.PublishAsync(updates);
        Assert.All(first, o =>
        {
            Assert.Equal(PublishStatus.Transient, o.Status);
            Assert.Contains("still", o.Error, StringComparison.Ordinal);
        });
        var retriedEarly = await h.PublishAsync(updates);
        await WaitUntilAsync(() => h.Emulator.FeedsProcessing == 0);
        var retriedLate = await h.PublishAsync(updates);

        AssertOnePerUpdate(updates, retriedLate);
        Assert.All(retriedEarly.Concat(retriedLate), o => Assert.NotEqual(PublishStatus.Permanent, o.Status));
        Assert.All(retriedLate, o => Assert.Equal(PublishStatus.Accepted, o.Status));
        AssertConverged(h.Emulator, updates);
        Assert.Equal(1, h.Emulator.FeedsSubmitted);
        Assert.Equal(0, h.Emulator.InventoryCalls);
    }

    [Fact]
    public async Task a_stale_feed_that_lands_after_a_newer_item_update_is_overwritten_again_with_the_newer_quantity()
    {
        // Walmart has no compare-and-set: a feed the connector could not wait for may land after a newer
        // urgent update. The connector notices when the feed finishes and writes the newer quantity again.
        await using var h = await Harness.StartAsync(
            new WalmartEmulatorOptions { FeedProcessingDelay = TimeSpan.FromMilliseconds(800) },
            "\"feedPollIntervalSeconds\": 0.05, \"feedPollAttemptsMax\": 2");
        var feed = Enumerable.Range(0, 15).Select(i => new AtsUpdate($"SKU-{i}", 10, 1, Urgent: false)).ToArray();
        foreach (var update in feed)
        {
            h.Emulator.AddListing(update.Sku, 50);
        }
        h.Emulator.AddListing("OTHER", 1);

        Assert.All(await h.PublishAsync(feed), o => Assert.Equal(PublishStatus.Transient, o.Status));
        var newer = Assert.Single(await h.PublishAsync(new AtsUpdate("SKU-0", 0, 2, Urgent: true)));
        Assert.Equal(PublishStatus.Accepted, newer.Status);
        await WaitUntilAsync(() => h.Emulator.FeedsProcessing == 0);
        Assert.Equal(10, h.Emulator.QuantityOf("SKU-0")); // the stale feed landed last, as Walmart would let it

        var next = await h.PublishAsync(new AtsUpdate("OTHER", 3, 1, Urgent: true));

        Assert.Equal(PublishStatus.Accepted, Assert.Single(next).Status);
        Assert.Equal(0, h.Emulator.QuantityOf("SKU-0"));
        Assert.All(feed.Skip(1), u => Assert.Equal(10, h.Emulator.QuantityOf(u.Sku)));
    }

    [Fact]
    public async Task ship_node_setting_is_sent_on_item_updates_and_feeds()
    {
        await using var h = await Harness.StartAsync(
            Fast(o => new WalmartEmulatorOptions { FeedProcessingDelay = o.FeedProcessingDelay, ShipNodes = ["10000003527"] }),
            FastPolling + ", \"shipNode\": \"10000003527\"");
        var updates = new[] { new AtsUpdate("URGENT", 0, 1, Urgent: true) }
            .Concat(Enumerable.Range(0, 12).Select(i => new AtsUpdate($"SKU-{i}", 4, 1, Urgent: false))).ToArray();
        foreach (var update in updates)
        {
            h.Emulator.AddListing(update.Sku, 9);
        }

        var outcomes = await h.PublishAsync(updates);

        Assert.All(outcomes, o => Assert.Equal(PublishStatus.Accepted, o.Status));
        Assert.All(updates, u => Assert.Equal("10000003527", h.Emulator.ShipNodeOf(u.Sku)));
    }

    [Fact]
    public async Task unknown_ship_node_is_permanent_with_walmarts_error()
    {
        await using var h = await Harness.StartAsync(
            Fast(o => new WalmartEmulatorOptions { ShipNodes = ["10000003527"] }), "\"shipNode\": \"999\"");
        h.Emulator.AddListing("SKU-1", 9);

        var outcome = Assert.Single(await h.PublishAsync(new AtsUpdate("SKU-1", 0, 1, Urgent: true)));

        Assert.Equal(PublishStatus.Permanent, outcome.Status);
        Assert.Contains("INVALID_REQUEST_PARAM.GMP_INVENTORY_API", outcome.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task a_batch_larger_than_batch_size_max_is_refused_as_a_bug()
    {
        await using var h = await Harness.StartAsync(Fast(), "\"batchSizeMax\": 2");
        var updates = Enumerable.Range(0, 3).Select(i => new AtsUpdate($"SKU-{i}", 1, 1, Urgent: false)).ToArray();

        await Assert.ThrowsAsync<ArgumentException>(() => h.Connector.PublishAsync(updates, CancellationToken.None));
        Assert.Equal(0, h.Emulator.Requests);
    }

    [Theory]
    [InlineData("""{"kind":"walmart","credentials":""}""", "\"credentials\" must be a non-empty string")]
    [InlineData("""{"kind":"walmart","credentials":"wm","baseUrl":"ftp://x"}""", "\"baseUrl\"")]
    [InlineData("""{"kind":"walmart","credentials":"wm","baseUrl":"not a url"}""", "\"baseUrl\"")]
    [InlineData("""{"kind":"walmart","credentials":"wm","tokenUrl":42}""", "\"tokenUrl\"")]
    [InlineData("""{"kind":"walmart","credentials":"wm","shipNode":17}""", "\"shipNode\"")]
    [InlineData("""{"kind":"walmart","credentials":"wm","serviceName":""}""", "\"serviceName\"")]
    [InlineData("""{"kind":"walmart","credentials":"wm","batchSizeMax":0}""", "\"batchSizeMax\" must be an integer from 1 to 10000")]
    [InlineData("""{"kind":"walmart","credentials":"wm","batchSizeMax":2.5}""", "\"batchSizeMax\"")]
    [InlineData("""{"kind":"walmart","credentials":"wm","feedsPerHour":-1}""", "\"feedsPerHour\"")]
    [InlineData("""{"kind":"walmart","credentials":"wm","inventoryCallsPerMinute":"fast"}""", "\"inventoryCallsPerMinute\"")]
    [InlineData("""{"kind":"walmart","credentials":"wm","feedPollIntervalSeconds":0}""", "\"feedPollIntervalSeconds\"")]
    [InlineData("""{"kind":"walmart","credentials":"wm","feedPollAttemptsMax":0}""", "\"feedPollAttemptsMax\"")]
    [InlineData("""{"kind":"walmart","credentials":"wm","timeoutSeconds":1000}""", "\"timeoutSeconds\"")]
    public void invalid_settings_are_rejected_with_a_message_naming_the_field(string json, string expected)
    {
        using var document = JsonDocument.Parse(json);

        var error = ConnectorFactory.Validate(document.RootElement);

        Assert.NotNull(error);
        Assert.Contains(expected, error, StringComparison.Ordinal);
    }

    [Fact]
    public void valid_settings_pass_and_publisher_fields_are_ignored()
    {
        using var document = JsonDocument.Parse("""
            {"kind":"walmart","credentials":"acme-walmart","shipNode":"10000003527","serviceName":"Walmart Marketplace",
             "baseUrl":"http://127.0.0.1:1234","feedsPerHour":10,"inventoryCallsPerMinute":200,
             "lowStockThreshold":5,"degradation":{"mode":"x"},"attemptsMax":9}
            """);

        Assert.Null(ConnectorFactory.Validate(document.RootElement));
        using var http = new HttpClient();
        var connector = ConnectorFactory.Create(document.RootElement, new ConnectorContext("walmart-us", http, TimeProvider.System, _ => null));
        Assert.IsType<WalmartConnector>(connector);
        Assert.Equal(1000, connector.BatchSizeMax);
    }

    [Fact]
    public void credentials_may_be_left_to_the_publisher_which_uses_the_channel_id()
    {
        using var document = JsonDocument.Parse("""{"kind":"walmart"}""");

        Assert.Null(ConnectorFactory.Validate(document.RootElement));
    }

    private static void AssertOnePerUpdate(IReadOnlyList<AtsUpdate> updates, IReadOnlyList<PublishOutcome> outcomes)
    {
        Assert.Equal(updates.Count, outcomes.Count);
        for (var i = 0; i < updates.Count; i++)
        {
            Assert.Equal(updates[i].Sku, outcomes[i].Sku);
            Assert.Equal(updates[i].Version, outcomes[i].Version);
        }
    }

    private static void AssertConverged(WalmartEmulator emulator, IEnumerable<AtsUpdate> updates)
    {
        foreach (var update in updates)
        {
            Assert.Equal(update.Quantity, emulator.QuantityOf(update.Sku));
        }
    }

    /// <summary>Waits for the emulator's background work (bounded); the assertions that follow check the state.</summary>
    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        for (var i = 0; i < 200 && !condition(); i++)
        {
            await Task.Delay(50);
        }
        Assert.True(condition(), "the emulator did not reach the expected state within 10 s");
    }

    private sealed class Harness : IAsyncDisposable
    {
        private readonly HttpClient _http = new();
        private readonly Func<string, string?> _credentials;

        private Harness(WalmartEmulator emulator, string settings, Func<string, string?> credentials)
        {
            Emulator = emulator;
            _credentials = credentials;
            Connector = NewConnector(settings);
        }

        public WalmartEmulator Emulator { get; }

        public IChannelConnector Connector { get; }

        public static async Task<Harness> StartAsync(WalmartEmulatorOptions options, string settings = "", Func<string, string?>? credentials = null)
        {
            var emulator = await WalmartEmulator.StartAsync(options);
            credentials ??= name => name switch
            {
                "clientId" => options.ClientId,
                "clientSecret" => options.ClientSecret,
                _ => null,
            };
            return new Harness(emulator, settings, credentials);
        }

        /// <summary>A connector on the same emulator, through the hub's factory, as a fresh hub process would create it.</summary>
        public IChannelConnector NewConnector(string settings)
        {
            var json = $$"""{"kind":"walmart","credentials":"acme-walmart","baseUrl":"{{Emulator.BaseAddress}}"{{(settings.Length > 0 ? ", " + settings : "")}}}""";
            using var document = JsonDocument.Parse(json);
            return ConnectorFactory.Create(document.RootElement, new ConnectorContext("walmart-us", _http, TimeProvider.System, _credentials));
        }

        public Task<IReadOnlyList<PublishOutcome>> PublishAsync(params AtsUpdate[] updates) =>
            Connector.PublishAsync(updates, CancellationToken.None);

        public async ValueTask DisposeAsync()
        {
            await Connector.DisposeAsync();
            _http.Dispose();
            await Emulator.DisposeAsync();
        }
    }
}
