using System.Net;
using System.Text.Json;
using Truestock.Connectors.Emulators;

namespace Truestock.Server.Tests;

/// <summary>
/// The publication pipeline end to end: the hub, a connected channel, and the channel's emulator
/// (here the webhook receiver; each connector's own behaviour is in Truestock.Connectors.Tests).
/// </summary>
public sealed class ChannelSyncTests
{
    private const string Secret = "test-webhook-secret";

    private static async Task<(HubServer Hub, WebhookEmulator Channel)> Start(object? extraConnector = null, WebhookEmulatorOptions? options = null)
    {
        var channel = await WebhookEmulator.StartAsync(options ?? new WebhookEmulatorOptions { Secret = Secret });
        var hub = await HubServer.Start($"--Truestock:Credentials:web:secret={Secret}", "--Truestock:ChannelPollMilliseconds=20");
        var connector = new Dictionary<string, object?>
        {
            ["kind"] = "webhook",
            ["url"] = channel.Url.ToString(),
            ["requestsPerSecondMax"] = 1000,
            ["timeoutSeconds"] = 2,
        };
        if (extraConnector is not null)
        {
            foreach (var p in extraConnector.GetType().GetProperties())
            {
                connector[p.Name] = p.GetValue(extraConnector);
            }
        }
        await hub.Setup("web", new { connector });
        return (hub, channel);
    }

    private static async Task<JsonElement> Sync(HubServer hub) => await hub.GetJson("/v1/channels/web/sync");

    /// <summary>Polls until the condition holds (real time: the publisher runs beside the test).</summary>
    private static async Task Eventually(Func<Task<bool>> condition, string what, int seconds = 60)
    {
        var until = DateTime.UtcNow.AddSeconds(seconds);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < until, $"Timed out waiting until {what}.");
            await Task.Delay(20);
        }
    }

    private static Task Drained(HubServer hub) =>
        Eventually(async () => (await Sync(hub)).Long("pending") == 0, "the channel has no pending publication");

    private static async Task<Dictionary<string, long>> HubAts(HubServer hub, IEnumerable<string> skus)
    {
        var result = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var chunk in skus.Chunk(500))
        {
            var view = await hub.GetJson("/v1/channels/web/availability?" + string.Join('&', chunk.Select(s => "sku=" + s)));
            foreach (var item in view.GetProperty("items").EnumerateArray())
            {
                result[item.Str("sku")] = item.Long("available");
            }
        }
        return result;
    }

    private static void AssertChannelShowsHubAts(WebhookEmulator channel, Dictionary<string, long> ats)
    {
        var wrong = ats.Where(kv => channel.QuantityOf(kv.Key) != kv.Value)
            .Select(kv => $"{kv.Key}: hub {kv.Value}, channel {channel.QuantityOf(kv.Key)?.ToString() ?? "nothing"}").Take(10).ToList();
        Assert.True(wrong.Count == 0, "The channel disagrees with the hub: " + string.Join("; ", wrong));
    }

    [Fact]
    public async Task after_a_burst_over_hundreds_of_skus_the_channel_shows_the_hub_ats_for_every_sku_with_coalesced_calls()
    {
        var (hub, channel) = await Start();
        await using var _ = hub;
        await using var __ = channel;
        var random = new Random(7);
        var skus = Enumerable.Range(0, 300).Select(i => $"SKU-{i:D3}").ToArray();
        var events = 0;
        for (var batch = 0; batch < 4; batch++)
        {
            var list = new List<object>();
            for (var i = 0; i < 1000; i++)
            {
                var sku = skus[random.Next(skus.Length)];
                var location = random.Next(2) == 0 ? "WH1" : "S1";
                list.Add(random.Next(4) == 0
                    ? HubServer.Event("sold", sku, location, random.Next(1, 3))
                    : HubServer.Event("received", sku, location, random.Next(1, 10)));
            }
            await hub.Events(list.ToArray());
            events += list.Count;
        }

        await Drained(hub);

        AssertChannelShowsHubAts(channel, await HubAts(hub, skus));
        // Every SKU changed about 13 times; the channel was called at most once per SKU per batch.
        Assert.True(channel.Requests <= skus.Length * 4, $"{channel.Requests} calls for {events} changes: changes were not coalesced.");
        Assert.Equal(0, channel.ThrottledResponses);
        Assert.Equal(0, channel.StaleIgnored);
        var status = await Sync(hub);
        Assert.Equal((0L, 0L), (status.Long("pending"), status.Long("deadLetters")));
        Assert.True(status.GetProperty("publishing").GetBoolean());
        Assert.Equal("webhook", status.Str("kind"));
    }

    [Fact]
    public async Task changes_a_channel_has_not_seen_are_sent_once_with_the_latest_value_only()
    {
        var (hub, channel) = await Start();
        await using var _ = hub;
        await using var __ = channel;
        await hub.Receive("A", "WH1", 10);
        await Drained(hub);
        Assert.Equal(10, channel.QuantityOf("A"));
        var before = channel.Requests;

        // Ten changes in one engine batch: one publication with the last value.
        await hub.Events(Enumerable.Range(0, 10).Select(_ => (object)HubServer.Event("sold", "A", "WH1", 1)).ToArray());
        await Drained(hub);

        Assert.Equal(0, channel.QuantityOf("A"));
        Assert.Equal(before + 1, channel.Requests);
    }

    [Fact]
    public async Task a_channel_declared_after_the_stock_is_synchronised_in_full()
    {
        var channel = await WebhookEmulator.StartAsync(new WebhookEmulatorOptions { Secret = Secret });
        await using var __ = channel;
        await using var hub = await HubServer.Start($"--Truestock:Credentials:late:secret={Secret}", "--Truestock:ChannelPollMilliseconds=20");
        await hub.Setup("web");
        await hub.Receive("A", "WH1", 4);
        await hub.Receive("B", "S1", 6);

        (await hub.Put("/v1/channels/late", new
        {
            name = "Late",
            locations = new[] { "WH1", "S1" },
            bufferUnits = 1,
            connector = new { kind = "webhook", url = channel.Url.ToString() },
        })).EnsureSuccessStatusCode();

        await Eventually(async () => (await hub.GetJson("/v1/channels/late/sync")).Long("pending") == 0 && channel.QuantityOf("B") is not null,
            "the late channel is synchronised");
        Assert.Equal((3L, 5L), (channel.QuantityOf("A")!.Value, channel.QuantityOf("B")!.Value));
    }

    [Fact]
    public async Task a_permanent_error_is_dead_lettered_with_the_channel_error_and_replay_fixes_it()
    {
        var (hub, channel) = await Start(options: new WebhookEmulatorOptions { Secret = Secret, RequireListings = true });
        await using var _ = hub;
        await using var __ = channel;
        channel.AddListing("GOOD");

        await hub.Receive("GOOD", "WH1", 5);
        await hub.Receive("MISSING", "WH1", 7);
        await Eventually(async () => (await Sync(hub)).Long("deadLetters") == 1, "the unknown listing is dead-lettered");

        Assert.Equal(5, channel.QuantityOf("GOOD"));
        var page = await hub.GetJson("/v1/channels/web/dead-letters");
        var letter = Assert.Single(page.GetProperty("items").EnumerateArray());
        Assert.Equal(("MISSING", 7L), (letter.Str("sku"), letter.Long("available")));
        Assert.False(string.IsNullOrWhiteSpace(letter.Str("error")));
        Assert.Equal("MISSING", (await hub.GetJson("/v1/channels/web/dead-letters/MISSING")).Str("sku"));

        // The dead letter keeps receiving the latest value while it waits for the operator.
        await hub.Receive("MISSING", "WH1", 1);
        await Eventually(async () => (await hub.GetJson("/v1/channels/web/dead-letters/MISSING")).Long("available") == 8, "the dead letter has the latest ATS");

        channel.AddListing("MISSING");
        var replay = await Api.AssertJson(await hub.PostEmpty("/v1/channels/web/dead-letters/MISSING/replay"), HttpStatusCode.OK);
        Assert.Equal(1, replay.Long("count"));
        await Drained(hub);

        Assert.Equal(8, channel.QuantityOf("MISSING"));
        Assert.Equal(0, (await Sync(hub)).Long("deadLetters"));
        await Api.AssertProblem(await hub.Client.GetAsync("/v1/channels/web/dead-letters/MISSING"), HttpStatusCode.NotFound, "unknown-dead-letter");
    }

    [Fact]
    public async Task replay_all_and_discard_act_on_every_dead_letter_of_the_channel()
    {
        var (hub, channel) = await Start(options: new WebhookEmulatorOptions { Secret = Secret, RequireListings = true });
        await using var _ = hub;
        await using var __ = channel;
        foreach (var sku in new[] { "X1", "X2", "X3" })
        {
            await hub.Receive(sku, "WH1", 2);
        }
        await Eventually(async () => (await Sync(hub)).Long("deadLetters") == 3, "three dead letters");

        var page = await hub.GetJson("/v1/channels/web/dead-letters?limit=2");
        Assert.Equal(["X1", "X2"], page.GetProperty("items").EnumerateArray().Select(i => i.Str("sku")).ToArray());
        var rest = await hub.GetJson("/v1/channels/web/dead-letters?limit=2&after=" + page.Str("next"));
        Assert.Equal(["X3"], rest.GetProperty("items").EnumerateArray().Select(i => i.Str("sku")).ToArray());

        var discarded = await Api.AssertJson(await hub.Client.DeleteAsync("/v1/channels/web/dead-letters/X3"), HttpStatusCode.OK);
        Assert.Equal(1, discarded.Long("count"));
        channel.AddListing("X1");
        channel.AddListing("X2");
        var replayed = await Api.AssertJson(await hub.PostEmpty("/v1/channels/web/dead-letters/replay"), HttpStatusCode.OK);
        Assert.Equal(2, replayed.Long("count"));
        await Drained(hub);

        Assert.Equal((2L, 2L), (channel.QuantityOf("X1")!.Value, channel.QuantityOf("X2")!.Value));
        Assert.Null(channel.QuantityOf("X3")); // discarded: nothing is sent until X3 changes again
        var status = await Sync(hub);
        Assert.Equal((0L, 0L), (status.Long("pending"), status.Long("deadLetters")));
    }

    [Fact]
    public async Task transient_failures_are_retried_after_backoff_and_dead_lettered_after_attempts_max()
    {
        var (hub, channel) = await Start(new { attemptsMax = 2, backoffSecondsMax = 5 });
        await using var _ = hub;
        await using var __ = channel;
        channel.Faults.FailNext(1000);

        await hub.Receive("A", "WH1", 3);
        await Eventually(async () => (await Sync(hub)).Long("retried") >= 1, "the first attempt failed and was scheduled again");
        var status = await Sync(hub);
        Assert.Equal((1L, 0L), (status.Long("pending"), status.Long("deadLetters")));

        // The retry is due only after the backoff, on the hub's clock.
        await hub.Advance(TimeSpan.FromSeconds(6));
        await Eventually(async () => (await Sync(hub)).Long("deadLetters") == 1, "the second failure dead-letters the publication");
        var letter = await hub.GetJson("/v1/channels/web/dead-letters/A");
        Assert.Contains("2 attempts", letter.Str("error"), StringComparison.Ordinal);

        channel.Faults.FailNext(0);
        await hub.PostEmpty("/v1/channels/web/dead-letters/replay");
        await Drained(hub);
        Assert.Equal(3, channel.QuantityOf("A"));
    }

    [Fact]
    public async Task degraded_mode_withholds_the_buffer_while_publication_lags_and_lifts_it_when_healthy()
    {
        var (hub, channel) = await Start(new
        {
            backoffSecondsMax = 1,
            attemptsMax = 100,
            degradation = new { lagSecondsMax = 60, bufferUnits = 2 },
        });
        await using var _ = hub;
        await using var __ = channel;
        await hub.Receive("A", "WH1", 10);
        await Drained(hub);

        channel.Faults.FailNext(100_000);
        await hub.Receive("A", "WH1", 5);
        await hub.Advance(TimeSpan.FromSeconds(61));
        await Eventually(async () => (await Sync(hub)).GetProperty("degraded").GetBoolean(), "the channel is degraded");

        var view = await hub.GetJson("/v1/channels/web/availability?sku=A");
        var item = Assert.Single(view.GetProperty("items").EnumerateArray());
        Assert.Equal(13, item.Long("available"));
        Assert.Equal(2, item.GetProperty("buffer").Long("degradationUnits"));
        Assert.Contains("truestock_channel_degraded{channel=\"web\",kind=\"webhook\"} 1", await hub.Client.GetStringAsync("/metrics"), StringComparison.Ordinal);
        // Reservations through the channel see the same reduced ATS.
        await Api.AssertProblem(await hub.Reserve(Api.Reservation("r1", "web", Api.Line("A", 14))), HttpStatusCode.Conflict);

        channel.Faults.FailNext(0);
        await hub.Advance(TimeSpan.FromSeconds(2));
        await Eventually(async () =>
        {
            await hub.Advance(TimeSpan.FromSeconds(1));
            return !(await Sync(hub)).GetProperty("degraded").GetBoolean();
        }, "the degradation is lifted");
        await Drained(hub);

        Assert.Equal(15, channel.QuantityOf("A"));
        Assert.Equal(15, Assert.Single((await hub.GetJson("/v1/channels/web/availability?sku=A")).GetProperty("items").EnumerateArray()).Long("available"));
    }

    [Fact]
    public async Task a_velocity_buffer_shows_its_inputs_in_the_availability_api()
    {
        var (hub, channel) = await Start(new { velocityBuffer = new { maxUnits = 50, delaySecondsInitial = 60 } });
        await using var _ = hub;
        await using var __ = channel;
        await hub.Receive("A", "WH1", 1000);
        await Eventually(async () => (await hub.GetJson("/v1/availability/A")).GetProperty("channels").EnumerateArray()
            .Single(c => c.Str("channelId") == "web").TryGetProperty("buffer", out var _), "the velocity buffer is set up");

        await hub.Events(HubServer.Event("sold", "A", "WH1", 30)); // 0.1 unit/s × 60 s = 6 units withheld

        var web = (await hub.GetJson("/v1/availability/A")).GetProperty("channels").EnumerateArray().Single(c => c.Str("channelId") == "web");
        var buffer = web.GetProperty("buffer");
        Assert.Equal(0.1, buffer.GetProperty("velocityUnitsPerSecond").GetDouble(), 6);
        Assert.Equal(60, buffer.GetProperty("propagationDelaySeconds").GetDouble());
        Assert.Equal(6, buffer.Long("velocityUnits"));
        Assert.Equal(970 - 6, web.Long("available"));
        await Drained(hub);
        Assert.Equal(964, channel.QuantityOf("A"));
    }

    [Fact]
    public async Task channel_metrics_report_backlog_calls_and_publication_latency()
    {
        var (hub, channel) = await Start();
        await using var _ = hub;
        await using var __ = channel;
        await hub.Receive("A", "WH1", 3);
        await Drained(hub);
        await Eventually(async () => (await Sync(hub)).Long("published") >= 1, "the publication is counted");

        var metrics = await hub.Client.GetStringAsync("/metrics");

        Assert.Contains("truestock_channel_publications_total{channel=\"web\",kind=\"webhook\",outcome=\"published\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("truestock_channel_calls_total{channel=\"web\",kind=\"webhook\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("truestock_channel_publication_latency_seconds_count{channel=\"web\",kind=\"webhook\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("truestock_channel_backlog{channel=\"web\",kind=\"webhook\"}", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task an_acknowledgement_of_an_older_version_never_replaces_a_newer_one()
    {
        var (hub, channel) = await Start();
        await using var _ = hub;
        await using var __ = channel;
        channel.Faults.FailNext(100_000); // keep the rows pending: the clock does not move, so no retry comes due
        await hub.Receive("A", "WH1", 5);
        var older = hub.Journal.ReadSyncRow("web", "A")!.Value;
        await hub.Receive("A", "WH1", 2);
        var newer = hub.Journal.ReadSyncRow("web", "A")!.Value;
        Assert.True(newer.Version > older.Version);
        Assert.Equal((5L, 7L), (older.Ats, newer.Ats));

        var now = hub.Time.GetUtcNow().ToUnixTimeMilliseconds();
        hub.Journal.RecordPublications("web", [new("A", 7, newer.Version, Storage.AdoJournal.SyncResultKind.Published, null, 0)], now);
        hub.Journal.RecordPublications("web", [new("A", 5, older.Version, Storage.AdoJournal.SyncResultKind.Published, null, 0)], now);

        var row = hub.Journal.ReadSyncRow("web", "A")!.Value;
        Assert.Equal((7L, newer.Version, false), (row.PublishedAts!.Value, row.PublishedVersion, row.Pending));
    }

    [Theory]
    [InlineData("{\"kind\":\"nope\"}", "kind")]
    [InlineData("{\"url\":\"http://127.0.0.1/\"}", "kind")]
    [InlineData("{\"kind\":\"webhook\"}", "url")]
    [InlineData("{\"kind\":\"webhook\",\"url\":\"http://127.0.0.1/\",\"attemptsMax\":0}", "attemptsMax")]
    [InlineData("{\"kind\":\"webhook\",\"url\":\"http://127.0.0.1/\",\"degradation\":{\"bufferUnits\":2}}", "threshold")]
    [InlineData("{\"kind\":\"webhook\",\"url\":\"http://127.0.0.1/\",\"velocityBuffer\":{}}", "maxUnits")]
    [InlineData("[1]", "object")]
    public async Task an_invalid_connector_is_rejected_with_the_field_and_changes_nothing(string connector, string mentioned)
    {
        await using var hub = await HubServer.Start();
        await hub.Setup("web");

        var response = await hub.PutRaw("/v1/channels/web", $"{{\"name\":\"Web\",\"locations\":[\"WH1\"],\"connector\":{connector}}}");

        var problem = await Api.AssertFieldError(response, "connector");
        Assert.Contains(mentioned, problem.GetProperty("errors").GetProperty("connector")[0].GetString(), StringComparison.Ordinal);
        var channel = await hub.GetJson("/v1/channels/web");
        Assert.False(channel.TryGetProperty("connector", out var c) && c.ValueKind != JsonValueKind.Null);
    }

    [Fact]
    public async Task the_sync_and_dead_letter_api_answer_problems_for_bad_requests()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup("web");

        await Api.AssertProblem(await hub.Client.GetAsync("/v1/channels/nope/sync"), HttpStatusCode.NotFound, "unknown-channel");
        await Api.AssertProblem(await hub.Client.GetAsync("/v1/channels/nope/dead-letters"), HttpStatusCode.NotFound, "unknown-channel");
        await Api.AssertProblem(await hub.PostEmpty("/v1/channels/nope/dead-letters/replay"), HttpStatusCode.NotFound, "unknown-channel");
        await Api.AssertFieldError(await hub.Client.GetAsync("/v1/channels/web/dead-letters?limit=0"), "limit");
        await Api.AssertFieldError(await hub.Client.GetAsync("/v1/channels/web/dead-letters?limit=1001"), "limit");
        await Api.AssertProblem(await hub.PostEmpty("/v1/channels/web/dead-letters/A/replay"), HttpStatusCode.NotFound, "unknown-dead-letter");
        await Api.AssertProblem(await hub.Client.DeleteAsync("/v1/channels/web/dead-letters/A"), HttpStatusCode.NotFound, "unknown-dead-letter");
        var status = await Sync(hub);
        Assert.Equal((0L, false), (status.Long("pending"), status.GetProperty("publishing").GetBoolean()));
    }

    [Fact]
    public async Task the_sync_and_dead_letter_api_need_the_admin_scope()
    {
        await using var hub = await HubServer.Start("--Truestock:ApiKeys:0:Key=reader-key-0123456789", "--Truestock:ApiKeys:0:Scopes:0=availability:read");

        hub.Client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "reader-key-0123456789");

        Assert.Equal(HttpStatusCode.Forbidden, (await hub.Client.GetAsync("/v1/channels/web/sync")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await hub.PostEmpty("/v1/channels/web/dead-letters/replay")).StatusCode);
    }

    [Fact]
    public async Task a_sale_where_a_velocity_channel_does_not_source_still_republishes_its_buffer()
    {
        await using var channel = await WebhookEmulator.StartAsync(new WebhookEmulatorOptions { Secret = Secret });
        await using var hub = await HubServer.Start($"--Truestock:Credentials:web:secret={Secret}", "--Truestock:ChannelPollMilliseconds=20");
        (await hub.Put("/v1/locations/S2", new { name = "Store 2", type = "store" })).EnsureSuccessStatusCode();
        await hub.Setup("web", new
        {
            connector = new { kind = "webhook", url = channel.Url.ToString(), velocityBuffer = new { maxUnits = 100, delaySecondsInitial = 300 } },
        }, "WH1");
        await hub.Receive("A", "WH1", 100);
        await hub.Receive("A", "S2", 10);
        await Drained(hub);
        Assert.Equal(100, channel.QuantityOf("A"));

        // Five sold at S2, which the channel does not source: velocity 5/300 unit/s × 300 s = 5 units withheld.
        await hub.Events(HubServer.Event("sold", "A", "S2", 5));
        await Drained(hub);

        Assert.Equal(95, channel.QuantityOf("A"));
    }

    [Fact]
    public async Task a_channel_moved_to_a_new_endpoint_is_told_every_value_again()
    {
        await using var first = await WebhookEmulator.StartAsync(new WebhookEmulatorOptions { Secret = Secret });
        await using var second = await WebhookEmulator.StartAsync(new WebhookEmulatorOptions { Secret = Secret });
        await using var hub = await HubServer.Start($"--Truestock:Credentials:web:secret={Secret}", "--Truestock:ChannelPollMilliseconds=20");
        await hub.Setup("web", new { connector = new { kind = "webhook", url = first.Url.ToString() } });
        await hub.Receive("A", "WH1", 4);
        await hub.Receive("B", "S1", 6);
        await Drained(hub);
        Assert.Equal((4L, 6L), (first.QuantityOf("A")!.Value, first.QuantityOf("B")!.Value));

        (await hub.Put("/v1/channels/web", new
        {
            name = "Web",
            locations = new[] { "WH1", "S1" },
            connector = new { kind = "webhook", url = second.Url.ToString() },
        })).EnsureSuccessStatusCode();
        await Eventually(async () => (await Sync(hub)).Long("pending") == 0 && second.QuantityOf("B") is not null, "the new endpoint is told");

        Assert.Equal((4L, 6L), (second.QuantityOf("A")!.Value, second.QuantityOf("B")!.Value));
    }
}
