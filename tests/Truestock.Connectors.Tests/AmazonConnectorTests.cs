using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Truestock.Connectors.Amazon;
using Truestock.Connectors.Emulators;

namespace Truestock.Connectors.Tests;

/// <summary>
/// The Amazon connector against the SP-API emulator: per-item patches for urgent updates, one
/// JSON_LISTINGS_FEED for the rest, LWA token refresh, throttles, faults and error mapping.
/// Limits and delays are shrunk so every test runs in seconds.
/// </summary>
public sealed class AmazonConnectorTests
{
    private const string Marketplace = "ATVPDKIKX0DER";

    /// <summary>Emulator limits fast enough for tests but still enforced.</summary>
    private static AmazonEmulatorOptions Fast(
        AmazonRateLimit? patch = null,
        TimeSpan? feedDelay = null,
        TimeSpan? tokenLifetime = null,
        bool compressReports = false,
        TimeSpan? retryAfter = null) => new()
        {
            PatchListingsItem = patch ?? new AmazonRateLimit(200, 20),
            GetListingsItem = new AmazonRateLimit(200, 20),
            CreateFeedDocument = new AmazonRateLimit(50, 15),
            CreateFeed = new AmazonRateLimit(10, 15),
            JsonListingsFeedSubmissions = new AmazonRateLimit(10, 5),
            GetFeed = new AmazonRateLimit(100, 15),
            GetFeedDocument = new AmazonRateLimit(50, 10),
            CancelFeed = new AmazonRateLimit(50, 15),
            FeedProcessingDelay = feedDelay ?? TimeSpan.FromMilliseconds(300),
            AccessTokenLifetime = tokenLifetime ?? TimeSpan.FromHours(1),
            CompressReports = compressReports,
            RetryAfterOnThrottle = retryAfter,
        };

    private static JsonElement Settings(AmazonEmulator emulator, Action<JsonObject>? tweak = null)
    {
        var json = new JsonObject
        {
            ["kind"] = "amazon",
            ["sellerId"] = emulator.Options.SellerId,
            ["marketplaceIds"] = new JsonArray(Marketplace),
            ["baseUrl"] = emulator.BaseAddress.AbsoluteUri,
            ["tokenUrl"] = emulator.TokenUrl.AbsoluteUri,
            ["credentials"] = "acme-amazon",
            ["patchRatePerSecond"] = 200,
            ["patchBurst"] = 20,
            ["feedRatePerSecond"] = 10,
            ["feedBurst"] = 5,
            ["feedPollSeconds"] = 0.05,
            ["feedWaitSecondsMax"] = 10,
            ["timeoutSeconds"] = 5,
            ["retryBaseDelayMilliseconds"] = 20,
        };
        tweak?.Invoke(json);
        return JsonDocument.Parse(json.ToJsonString()).RootElement.Clone();
    }

    private static ConnectorContext Context(HttpClient http, AmazonEmulatorOptions options, string? clientSecret = null, string? missing = null) =>
        new("amazon-test", http, TimeProvider.System, name => name == missing ? null : name switch
        {
            "clientId" => options.ClientId,
            "clientSecret" => clientSecret ?? options.ClientSecret,
            "refreshToken" => options.RefreshToken,
            _ => null,
        });

    private static AmazonConnector Create(AmazonEmulator emulator, HttpClient http, Action<JsonObject>? tweak = null, string? clientSecret = null, string? missing = null) =>
        (AmazonConnector)ConnectorFactory.Create(Settings(emulator, tweak), Context(http, emulator.Options, clientSecret, missing));

    private static List<AtsUpdate> Updates(int count, bool urgent, string prefix = "SKU-", int quantityBase = 10, long version = 1) =>
        [.. Enumerable.Range(0, count).Select(i => new AtsUpdate($"{prefix}{i:D4}", quantityBase + (i % 37), version, urgent))];

    private static void List(AmazonEmulator emulator, IEnumerable<AtsUpdate> updates)
    {
        foreach (var update in updates)
        {
            emulator.AddListing(update.Sku, quantity: 1000);
        }
    }

    /// <summary>Publishes and checks the contract: one outcome per update, same SKU and version, in order.</summary>
    private static async Task<IReadOnlyList<PublishOutcome>> Publish(IChannelConnector connector, IReadOnlyList<AtsUpdate> updates)
    {
        var outcomes = await connector.PublishAsync(updates, CancellationToken.None);
        Assert.Equal(updates.Count, outcomes.Count);
        for (var i = 0; i < updates.Count; i++)
        {
            Assert.Equal(updates[i].Sku, outcomes[i].Sku);
            Assert.Equal(updates[i].Version, outcomes[i].Version);
            Assert.Equal(outcomes[i].Status == PublishStatus.Accepted, outcomes[i].Error is null);
        }
        return outcomes;
    }

    private static void AssertConverged(AmazonEmulator emulator, IEnumerable<AtsUpdate> updates)
    {
        foreach (var update in updates)
        {
            Assert.Equal(update.Quantity, emulator.QuantityOf(update.Sku));
        }
    }

    // ------------------------------------------------------------------ settings

    [Fact]
    public void validate_accepts_minimal_settings()
    {
        var json = JsonDocument.Parse("""{"kind":"amazon","sellerId":"A1","marketplaceIds":["ATVPDKIKX0DER"],"credentials":"acme"}""").RootElement;
        Assert.Null(ConnectorFactory.Validate(json));
        Assert.Null(AmazonConnector.Validate(json));
    }

    [Theory]
    [InlineData("""{"marketplaceIds":["ATVPDKIKX0DER"],"credentials":"c"}""", "sellerId")]
    [InlineData("""{"sellerId":"A1","credentials":"c"}""", "marketplaceIds")]
    [InlineData("""{"sellerId":"A1","marketplaceIds":[],"credentials":"c"}""", "marketplaceIds")]
    [InlineData("""{"sellerId":"A1","marketplaceIds":["bad id!"],"credentials":"c"}""", "marketplaceIds")]
    [InlineData("""{"sellerId":"A1","marketplaceIds":["ATVPDKIKX0DER"]}""", "credentials")]
    [InlineData("""{"sellerId":"A1","marketplaceIds":["ATVPDKIKX0DER"],"credentials":"c","region":"mars"}""", "region")]
    [InlineData("""{"sellerId":"A1","marketplaceIds":["ATVPDKIKX0DER"],"credentials":"c","baseUrl":"ftp://x"}""", "baseUrl")]
    [InlineData("""{"sellerId":"A1","marketplaceIds":["ATVPDKIKX0DER"],"credentials":"c","tokenUrl":"not a url"}""", "tokenUrl")]
    [InlineData("""{"sellerId":"A1","marketplaceIds":["ATVPDKIKX0DER"],"credentials":"c","productType":"lower case"}""", "productType")]
    [InlineData("""{"sellerId":"A1","marketplaceIds":["ATVPDKIKX0DER"],"credentials":"c","feedMessagesMax":30000}""", "feedMessagesMax")]
    [InlineData("""{"sellerId":"A1","marketplaceIds":["ATVPDKIKX0DER"],"credentials":"c","throttleRetriesMax":-1}""", "throttleRetriesMax")]
    [InlineData("""{"sellerId":"A1","marketplaceIds":["ATVPDKIKX0DER"],"credentials":"c","feedPollSeconds":"fast"}""", "feedPollSeconds")]
    [InlineData("""{"sellerId":"A1","marketplaceIds":["ATVPDKIKX0DER"],"credentials":"c","patchBurst":0}""", "patchBurst")]
    public void validate_rejects_invalid_settings_naming_the_field(string json, string field)
    {
        var error = AmazonConnector.Validate(JsonDocument.Parse(json).RootElement);
        Assert.NotNull(error);
        Assert.Contains($"\"{field}\"", error, StringComparison.Ordinal);
    }

    [Fact]
    public void batch_size_is_the_feed_size()
    {
        using var http = new HttpClient();
        var json = JsonDocument.Parse("""{"kind":"amazon","sellerId":"A1","marketplaceIds":["ATVPDKIKX0DER"],"credentials":"c","feedMessagesMax":2000}""").RootElement;
        var connector = ConnectorFactory.Create(json, new ConnectorContext("c", http, TimeProvider.System, _ => null));
        Assert.Equal(2000, connector.BatchSizeMax);
    }

    // ------------------------------------------------------------------ convergence

    [Fact]
    public async Task urgent_updates_go_per_item_and_a_burst_of_hundreds_converges()
    {
        await using var emulator = await AmazonEmulator.StartAsync(Fast());
        using var http = new HttpClient();
        await using var connector = Create(emulator, http);
        var updates = Updates(300, urgent: true);
        List(emulator, updates);

        var outcomes = await Publish(connector, updates);

        Assert.All(outcomes, o => Assert.Equal(PublishStatus.Accepted, o.Status));
        AssertConverged(emulator, updates);
        Assert.Equal(300, emulator.PatchesApplied);
        Assert.Equal(0, emulator.FeedsCreated);
        Assert.InRange(emulator.ThrottledResponses, 0, 3);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task burst_of_hundreds_of_non_urgent_skus_converges_through_a_single_feed(bool compressedReport)
    {
        await using var emulator = await AmazonEmulator.StartAsync(Fast(compressReports: compressedReport));
        using var http = new HttpClient();
        await using var connector = Create(emulator, http);
        var updates = Updates(500, urgent: false);
        List(emulator, updates);

        var outcomes = await Publish(connector, updates);

        Assert.All(outcomes, o => Assert.Equal(PublishStatus.Accepted, o.Status));
        AssertConverged(emulator, updates);
        Assert.Equal(1, emulator.FeedsCreated);
        Assert.Equal(0, emulator.PatchesApplied);
        Assert.Equal(500, emulator.UpdatesApplied);
        Assert.InRange(emulator.ThrottledResponses, 0, 3);
    }

    [Fact]
    public async Task mixed_batch_sends_urgent_items_per_item_and_the_rest_in_one_feed()
    {
        await using var emulator = await AmazonEmulator.StartAsync(Fast());
        using var http = new HttpClient();
        await using var connector = Create(emulator, http);
        var updates = Updates(12, urgent: true, prefix: "HOT-").Concat(Updates(200, urgent: false, prefix: "COLD-")).ToList();
        List(emulator, updates);

        var outcomes = await Publish(connector, updates);

        Assert.All(outcomes, o => Assert.Equal(PublishStatus.Accepted, o.Status));
        AssertConverged(emulator, updates);
        Assert.Equal(12, emulator.PatchesApplied);
        Assert.Equal(1, emulator.FeedsCreated);
    }

    [Fact]
    public async Task small_non_urgent_batch_goes_per_item_without_spending_a_feed()
    {
        await using var emulator = await AmazonEmulator.StartAsync(Fast());
        using var http = new HttpClient();
        await using var connector = Create(emulator, http);
        var updates = Updates(8, urgent: false);
        List(emulator, updates);

        var outcomes = await Publish(connector, updates);

        Assert.All(outcomes, o => Assert.Equal(PublishStatus.Accepted, o.Status));
        AssertConverged(emulator, updates);
        Assert.Equal(0, emulator.FeedsCreated);
        Assert.Equal(8, emulator.PatchesApplied);
    }

    [Fact]
    public async Task feed_budget_exhausted_sends_the_highest_priority_items_per_item_and_transient_for_the_rest()
    {
        await using var emulator = await AmazonEmulator.StartAsync(Fast());
        using var http = new HttpClient();
        await using var connector = Create(emulator, http, s =>
        {
            s["feedBurst"] = 1;
            s["feedRatePerSecond"] = 0.0001;
            s["patchRatePerSecond"] = 10;
            s["patchBurst"] = 10;
            s["perItemSecondsMax"] = 1;
        });
        var first = Updates(60, urgent: false, prefix: "A-");
        var second = Updates(100, urgent: false, prefix: "B-");
        List(emulator, first.Concat(second));

        Assert.All(await Publish(connector, first), o => Assert.Equal(PublishStatus.Accepted, o.Status));
        var outcomes = await Publish(connector, second);

        Assert.Equal(1, emulator.FeedsCreated);
        var accepted = outcomes.TakeWhile(o => o.Status == PublishStatus.Accepted).Count();
        Assert.InRange(accepted, 1, 99);
        Assert.All(outcomes.Skip(accepted), o =>
        {
            Assert.Equal(PublishStatus.Transient, o.Status);
            Assert.Contains("feed budget exhausted", o.Error, StringComparison.Ordinal);
        });
        AssertConverged(emulator, second.Take(accepted));
        Assert.Equal(1000, emulator.QuantityOf(second[^1].Sku));
    }

    // ------------------------------------------------------------------ tokens and auth

    [Fact]
    public async Task expired_access_token_is_refreshed_before_the_next_call()
    {
        await using var emulator = await AmazonEmulator.StartAsync(Fast(tokenLifetime: TimeSpan.FromSeconds(1)));
        using var http = new HttpClient();
        await using var connector = Create(emulator, http);
        var updates = Updates(3, urgent: true);
        List(emulator, updates);

        Assert.All(await Publish(connector, updates), o => Assert.Equal(PublishStatus.Accepted, o.Status));
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        var newer = updates.Select(u => u with { Quantity = u.Quantity + 1, Version = 2 }).ToList();
        Assert.All(await Publish(connector, newer), o => Assert.Equal(PublishStatus.Accepted, o.Status));

        Assert.Equal(2, emulator.TokensIssued);
        Assert.Equal(2, connector.TokenRefreshes);
        Assert.Equal(0, connector.Counters.Failures);
        AssertConverged(emulator, newer);
    }

    [Fact]
    public async Task token_rejected_by_the_api_is_refreshed_once_and_the_update_goes_through()
    {
        await using var emulator = await AmazonEmulator.StartAsync(Fast());
        using var http = new HttpClient();
        await using var connector = Create(emulator, http);
        var updates = Updates(2, urgent: true);
        List(emulator, updates);
        Assert.All(await Publish(connector, updates), o => Assert.Equal(PublishStatus.Accepted, o.Status));

        emulator.ExpireAccessTokens();
        var newer = updates.Select(u => u with { Quantity = 0, Version = 2 }).ToList();
        Assert.All(await Publish(connector, newer), o => Assert.Equal(PublishStatus.Accepted, o.Status));

        Assert.Equal(2, emulator.TokensIssued);
        AssertConverged(emulator, newer);
    }

    [Fact]
    public async Task bad_client_secret_is_permanent_with_the_lwa_error_and_no_secret()
    {
        await using var emulator = await AmazonEmulator.StartAsync(Fast());
        using var http = new HttpClient();
        const string wrongSecret = "amzn1.oa2-cs.v1.not-the-secret";
        await using var connector = Create(emulator, http, clientSecret: wrongSecret);
        var updates = Updates(5, urgent: true);
        List(emulator, updates);

        var outcomes = await Publish(connector, updates);

        Assert.All(outcomes, o =>
        {
            Assert.Equal(PublishStatus.Permanent, o.Status);
            Assert.Contains("invalid_client", o.Error, StringComparison.Ordinal);
            Assert.DoesNotContain(wrongSecret, o.Error, StringComparison.Ordinal);
        });
        Assert.Equal(0, emulator.TokensIssued);
        Assert.Equal(0, emulator.UpdatesApplied);
        Assert.Equal(1, connector.Counters.Calls);
    }

    [Fact]
    public async Task missing_credential_is_permanent_and_named()
    {
        await using var emulator = await AmazonEmulator.StartAsync(Fast());
        using var http = new HttpClient();
        await using var connector = Create(emulator, http, missing: "refreshToken");
        var updates = Updates(2, urgent: true);

        var outcomes = await Publish(connector, updates);

        Assert.All(outcomes, o =>
        {
            Assert.Equal(PublishStatus.Permanent, o.Status);
            Assert.Contains("'refreshToken'", o.Error, StringComparison.Ordinal);
        });
        Assert.Equal(0, emulator.Requests);
    }

    [Fact]
    public async Task access_denied_after_one_token_refresh_is_permanent_with_amazons_error()
    {
        await using var emulator = await AmazonEmulator.StartAsync(Fast());
        using var http = new HttpClient();
        await using var connector = Create(emulator, http, s => s["sellerId"] = "ANOTHERSELLER");
        var updates = Updates(1, urgent: true);
        List(emulator, updates);

        var outcome = Assert.Single(await Publish(connector, updates));

        Assert.Equal(PublishStatus.Permanent, outcome.Status);
        Assert.Contains("Unauthorized: Access to requested resource is denied.", outcome.Error, StringComparison.Ordinal);
        Assert.Equal(2, emulator.TokensIssued);
        Assert.Equal(0, emulator.UpdatesApplied);
    }

    // ------------------------------------------------------------------ permanent errors

    [Fact]
    public async Task unknown_sku_per_item_is_permanent_with_amazons_not_found_error()
    {
        await using var emulator = await AmazonEmulator.StartAsync(Fast());
        using var http = new HttpClient();
        await using var connector = Create(emulator, http);
        var known = new AtsUpdate("KNOWN", 4, 1, true);
        emulator.AddListing("KNOWN");

        var outcomes = await Publish(connector, [known, new AtsUpdate("NO-SUCH-SKU", 4, 1, true)]);

        Assert.Equal(PublishStatus.Accepted, outcomes[0].Status);
        Assert.Equal(PublishStatus.Permanent, outcomes[1].Status);
        Assert.Contains("NOT_FOUND: SKU 'NO-SUCH-SKU' not found in marketplace ATVPDKIKX0DER", outcomes[1].Error, StringComparison.Ordinal);
        Assert.Equal(4, emulator.QuantityOf("KNOWN"));
    }

    [Fact]
    public async Task unknown_and_broken_skus_in_a_feed_are_permanent_and_the_rest_are_accepted()
    {
        await using var emulator = await AmazonEmulator.StartAsync(Fast());
        using var http = new HttpClient();
        await using var connector = Create(emulator, http);
        var updates = Updates(80, urgent: false);
        List(emulator, updates.Skip(1));
        emulator.Faults.BreakSku(updates[40].Sku);

        var outcomes = await Publish(connector, updates);

        Assert.Equal(1, emulator.FeedsCreated);
        Assert.Equal(PublishStatus.Permanent, outcomes[0].Status);
        Assert.Contains($"SKU '{updates[0].Sku}' not found", outcomes[0].Error, StringComparison.Ordinal);
        Assert.Equal(PublishStatus.Permanent, outcomes[40].Status);
        Assert.Contains("message 41", outcomes[40].Error, StringComparison.Ordinal);
        var rest = updates.Where((_, i) => i is not 0 and not 40).ToList();
        Assert.All(outcomes.Where((_, i) => i is not 0 and not 40), o => Assert.Equal(PublishStatus.Accepted, o.Status));
        AssertConverged(emulator, rest);
    }

    [Fact]
    public async Task invalid_submission_is_permanent_with_the_issue_text()
    {
        await using var emulator = await AmazonEmulator.StartAsync(Fast());
        using var http = new HttpClient();
        await using var connector = Create(emulator, http, s => s["productType"] = "LUGGAGE");
        emulator.AddListing("SHOE-1", quantity: 3, productType: "SHOES");

        var outcome = Assert.Single(await Publish(connector, [new AtsUpdate("SHOE-1", 9, 1, true)]));

        Assert.Equal(PublishStatus.Permanent, outcome.Status);
        Assert.Contains("INVALID", outcome.Error, StringComparison.Ordinal);
        Assert.Contains("LUGGAGE", outcome.Error, StringComparison.Ordinal);
        Assert.Equal(3, emulator.QuantityOf("SHOE-1"));
    }

    // ------------------------------------------------------------------ throttles

    [Fact]
    public async Task throttled_calls_wait_for_retry_after_and_converge()
    {
        await using var emulator = await AmazonEmulator.StartAsync(Fast(patch: new AmazonRateLimit(20, 2), retryAfter: TimeSpan.FromSeconds(1)));
        using var http = new HttpClient();
        // The connector believes in a far bigger plan than the account has, so Amazon must throttle it.
        await using var connector = Create(emulator, http, s =>
        {
            s["patchRatePerSecond"] = 1000;
            s["patchBurst"] = 10;
        });
        var updates = Updates(40, urgent: true);
        List(emulator, updates);

        var outcomes = await Publish(connector, updates);

        Assert.All(outcomes, o => Assert.Equal(PublishStatus.Accepted, o.Status));
        AssertConverged(emulator, updates);
        Assert.True(connector.Counters.Throttles >= 1);
        Assert.Equal(emulator.ThrottledResponses, connector.Counters.Throttles);
    }

    [Fact]
    public async Task rate_limit_header_aligns_the_connector_with_the_accounts_usage_plan()
    {
        await using var emulator = await AmazonEmulator.StartAsync(Fast(patch: new AmazonRateLimit(60, 5)));
        using var http = new HttpClient();
        // Configured far too fast: only x-amzn-RateLimit-Limit keeps the throttles to a handful.
        await using var connector = Create(emulator, http, s =>
        {
            s["patchRatePerSecond"] = 1000;
            s["patchBurst"] = 5;
        });
        var updates = Updates(150, urgent: true);
        List(emulator, updates);

        var outcomes = await Publish(connector, updates);

        Assert.All(outcomes, o => Assert.Equal(PublishStatus.Accepted, o.Status));
        AssertConverged(emulator, updates);
        Assert.InRange(emulator.ThrottledResponses, 0, 5);
    }

    [Fact]
    public async Task throttling_beyond_the_retry_limit_gives_transient_with_quota_exceeded()
    {
        await using var emulator = await AmazonEmulator.StartAsync(Fast(patch: new AmazonRateLimit(0.01, 1)));
        using var http = new HttpClient();
        await using var connector = Create(emulator, http, s => s["throttleRetriesMax"] = 1);
        var updates = Updates(3, urgent: true);
        List(emulator, updates);
        // Another application of the seller spent the account's only token.
        await PatchDirectlyAsync(http, emulator, updates[0].Sku, 1);

        var outcomes = await Publish(connector, updates);

        Assert.All(outcomes, o =>
        {
            Assert.Equal(PublishStatus.Transient, o.Status);
            Assert.Contains("QuotaExceeded", o.Error, StringComparison.Ordinal);
        });
        Assert.Equal(6, connector.Counters.Throttles);
        Assert.Equal(1, emulator.UpdatesApplied);
    }

    [Fact]
    public async Task per_item_time_is_bounded_when_amazon_lowers_the_rate()
    {
        // The account's plan is one request every two seconds; the header tells the connector so.
        await using var emulator = await AmazonEmulator.StartAsync(Fast(patch: new AmazonRateLimit(0.5, 1)));
        using var http = new HttpClient();
        await using var connector = Create(emulator, http, s =>
        {
            s["urgentSecondsMax"] = 1;
            s["timeoutSeconds"] = 1;
            s["throttleRetriesMax"] = 10;
        });
        var updates = Updates(6, urgent: true);
        List(emulator, updates);

        var outcomes = await Publish(connector, updates);

        Assert.Contains(outcomes, o => o.Status == PublishStatus.Accepted);
        Assert.Contains(outcomes, o => o.Status == PublishStatus.Transient && o.Error!.Contains("per-item requests", StringComparison.Ordinal));
        AssertConverged(emulator, updates.Where((_, i) => outcomes[i].Status == PublishStatus.Accepted));
    }

    [Fact]
    public async Task amazon_throttling_create_feed_sends_the_highest_priority_items_per_item()
    {
        var options = Fast();
        await using var emulator = await AmazonEmulator.StartAsync(new AmazonEmulatorOptions
        {
            PatchListingsItem = options.PatchListingsItem,
            CreateFeedDocument = options.CreateFeedDocument,
            CreateFeed = options.CreateFeed,
            JsonListingsFeedSubmissions = new AmazonRateLimit(0.0001, 1),
            GetFeed = options.GetFeed,
            GetFeedDocument = options.GetFeedDocument,
            FeedProcessingDelay = options.FeedProcessingDelay,
        });
        using var http = new HttpClient();
        await using var connector = Create(emulator, http, s =>
        {
            s["patchRatePerSecond"] = 10;
            s["patchBurst"] = 10;
            s["perItemSecondsMax"] = 1;
        });
        var first = Updates(60, urgent: false, prefix: "A-");
        var second = Updates(60, urgent: false, prefix: "B-");
        List(emulator, first.Concat(second));
        Assert.All(await Publish(connector, first), o => Assert.Equal(PublishStatus.Accepted, o.Status));

        var outcomes = await Publish(connector, second);

        Assert.Equal(1, emulator.FeedsCreated);
        Assert.Equal(1, emulator.ThrottledResponses);
        var accepted = outcomes.TakeWhile(o => o.Status == PublishStatus.Accepted).Count();
        Assert.InRange(accepted, 1, 59);
        Assert.All(outcomes.Skip(accepted), o =>
        {
            Assert.Equal(PublishStatus.Transient, o.Status);
            Assert.Contains("Amazon throttled createFeed", o.Error, StringComparison.Ordinal);
        });
        AssertConverged(emulator, second.Take(accepted));
    }

    // ------------------------------------------------------------------ transient failures

    [Fact]
    public async Task server_errors_give_transient_and_the_next_call_converges()
    {
        await using var emulator = await AmazonEmulator.StartAsync(Fast());
        using var http = new HttpClient();
        await using var connector = Create(emulator, http, s => s["transientRetriesMax"] = 0);
        var updates = Updates(3, urgent: true);
        List(emulator, updates);

        emulator.Faults.FailNext(3);
        var failed = await Publish(connector, updates);
        Assert.All(failed, o =>
        {
            Assert.Equal(PublishStatus.Transient, o.Status);
            Assert.Contains("503", o.Error, StringComparison.Ordinal);
        });
        Assert.Equal(3, connector.Counters.Failures);

        Assert.All(await Publish(connector, updates), o => Assert.Equal(PublishStatus.Accepted, o.Status));
        AssertConverged(emulator, updates);
    }

    [Fact]
    public async Task one_server_error_is_retried_within_the_call()
    {
        await using var emulator = await AmazonEmulator.StartAsync(Fast());
        using var http = new HttpClient();
        await using var connector = Create(emulator, http);
        var updates = Updates(1, urgent: true);
        List(emulator, updates);

        emulator.Faults.FailNext(1);
        Assert.All(await Publish(connector, updates), o => Assert.Equal(PublishStatus.Accepted, o.Status));
        Assert.Equal(1, connector.Counters.Failures);
        AssertConverged(emulator, updates);
    }

    [Fact]
    public async Task timeouts_give_transient()
    {
        await using var emulator = await AmazonEmulator.StartAsync(Fast());
        using var http = new HttpClient();
        await using var connector = Create(emulator, http, s =>
        {
            s["timeoutSeconds"] = 0.5;
            s["transientRetriesMax"] = 0;
        });
        var updates = Updates(1, urgent: true);
        List(emulator, updates);

        emulator.Faults.TimeOutNext(1);
        var outcome = Assert.Single(await Publish(connector, updates));

        Assert.Equal(PublishStatus.Transient, outcome.Status);
        Assert.Contains("timed out", outcome.Error, StringComparison.Ordinal);
        Assert.Equal(1000, emulator.QuantityOf(updates[0].Sku));
    }

    [Fact]
    public async Task fatal_feed_gives_transient_and_a_retry_converges()
    {
        await using var emulator = await AmazonEmulator.StartAsync(Fast());
        using var http = new HttpClient();
        await using var connector = Create(emulator, http);
        var updates = Updates(60, urgent: false);
        List(emulator, updates);

        emulator.FailNextFeeds(1);
        Assert.All(await Publish(connector, updates), o =>
        {
            Assert.Equal(PublishStatus.Transient, o.Status);
            Assert.Contains("FATAL", o.Error, StringComparison.Ordinal);
        });
        Assert.All(await Publish(connector, updates), o => Assert.Equal(PublishStatus.Accepted, o.Status));

        Assert.Equal(2, emulator.FeedsCreated);
        AssertConverged(emulator, updates);
    }

    [Fact]
    public async Task feed_still_queued_after_the_wait_is_cancelled_and_gives_transient()
    {
        await using var emulator = await AmazonEmulator.StartAsync(Fast(feedDelay: TimeSpan.FromMinutes(1)));
        using var http = new HttpClient();
        await using var connector = Create(emulator, http, s => s["feedWaitSecondsMax"] = 0.5);
        var updates = Updates(60, urgent: false);
        List(emulator, updates);

        var outcomes = await Publish(connector, updates);

        Assert.All(outcomes, o =>
        {
            Assert.Equal(PublishStatus.Transient, o.Status);
            Assert.Contains("cancelled", o.Error, StringComparison.Ordinal);
        });
        Assert.Equal(1, emulator.FeedsCancelled);
        Assert.Equal(0, connector.PendingFeedCount);
        Assert.Equal(1000, emulator.QuantityOf(updates[0].Sku));
    }

    [Fact]
    public async Task newer_quantity_is_not_overwritten_by_an_older_feed_still_processing()
    {
        // IN_QUEUE for 3 s, IN_PROGRESS for 3 s: the connector stops waiting after 4 s, while the
        // feed is in progress, so it cannot cancel it.
        await using var emulator = await AmazonEmulator.StartAsync(Fast(feedDelay: TimeSpan.FromSeconds(6)));
        using var http = new HttpClient();
        await using var connector = Create(emulator, http, s => s["feedWaitSecondsMax"] = 4);
        var old = Updates(60, urgent: false, quantityBase: 50);
        List(emulator, old);

        Assert.All(await Publish(connector, old), o => Assert.Equal(PublishStatus.Transient, o.Status));
        Assert.Equal(1, connector.PendingFeedCount);

        // While the old feed runs: an urgent zero goes out at once but is reported Transient
        // (the feed may overwrite it); a non-urgent change of another SKU is held.
        var zero = new AtsUpdate(old[0].Sku, 0, 2, Urgent: true);
        var other = new AtsUpdate(old[1].Sku, 7, 2, Urgent: false);
        var during = await Publish(connector, [zero, other]);
        Assert.Equal(PublishStatus.Transient, during[0].Status);
        Assert.Contains("sent, but feed", during[0].Error, StringComparison.Ordinal);
        Assert.Equal(PublishStatus.Transient, during[1].Status);
        Assert.Contains("held", during[1].Error, StringComparison.Ordinal);

        for (var i = 0; i < 200 && emulator.FeedStatus("50000000001") != "DONE"; i++)
        {
            await Task.Delay(50);
        }
        Assert.Equal(old[0].Quantity, emulator.QuantityOf(zero.Sku));

        // The publisher's retry, after the feed finished, restores the newest quantities.
        Assert.All(await Publish(connector, [zero, other]), o => Assert.Equal(PublishStatus.Accepted, o.Status));
        Assert.Equal(0, emulator.QuantityOf(zero.Sku));
        Assert.Equal(7, emulator.QuantityOf(other.Sku));
        Assert.Equal(0, connector.PendingFeedCount);
    }

    // ------------------------------------------------------------------ the emulator itself

    [Fact]
    public async Task emulator_rejects_a_malformed_patch_with_amazons_invalid_input_error()
    {
        await using var emulator = await AmazonEmulator.StartAsync(Fast());
        using var http = new HttpClient();
        emulator.AddListing("SKU-1", quantity: 5);
        var token = await TokenAsync(http, emulator);
        var url = new Uri(emulator.BaseAddress, $"listings/2021-08-01/items/{emulator.Options.SellerId}/SKU-1?marketplaceIds={Marketplace}");

        // "patches" as an object instead of an array, as a common client bug sends it.
        using var request = new HttpRequestMessage(HttpMethod.Patch, url)
        {
            Content = new StringContent("""{"productType":"PRODUCT","patches":{"op":"replace","path":"/attributes/fulfillment_availability","value":[{"quantity":2}]}}""",
                Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("x-amz-access-token", token);
        using var response = await http.SendAsync(request);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var body = await response.Content.ReadAsStringAsync();
        Assert.Contains("\"code\":\"InvalidInput\"", body, StringComparison.Ordinal);
        Assert.Equal(5, emulator.QuantityOf("SKU-1"));
    }

    [Fact]
    public async Task emulator_feed_moves_from_in_queue_through_in_progress_to_done()
    {
        await using var emulator = await AmazonEmulator.StartAsync(Fast(feedDelay: TimeSpan.FromSeconds(1)));
        using var http = new HttpClient();
        emulator.AddListing("SKU-1", quantity: 5);
        var token = await TokenAsync(http, emulator);

        var document = await SendJson(http, token, HttpMethod.Post, new Uri(emulator.BaseAddress, "feeds/2021-06-30/documents"), """{"contentType":"application/json; charset=UTF-8"}""");
        using (var upload = new ByteArrayContent(Encoding.UTF8.GetBytes(
            """{"header":{"sellerId":"A2EMULATORSELLER","version":"2.0"},"messages":[{"messageId":1,"sku":"SKU-1","operationType":"PATCH","productType":"PRODUCT","patches":[{"op":"replace","path":"/attributes/fulfillment_availability","value":[{"fulfillment_channel_code":"DEFAULT","quantity":3}]}]}]}""")))
        {
            upload.Headers.ContentType = MediaTypeHeaderValue.Parse("application/json; charset=UTF-8");
            using var put = await http.PutAsync(new Uri(document.GetProperty("url").GetString()!), upload);
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        }
        var feed = await SendJson(http, token, HttpMethod.Post, new Uri(emulator.BaseAddress, "feeds/2021-06-30/feeds"),
            $$"""{"feedType":"JSON_LISTINGS_FEED","marketplaceIds":["{{Marketplace}}"],"inputFeedDocumentId":"{{document.GetProperty("feedDocumentId").GetString()}}"}""");
        var feedId = feed.GetProperty("feedId").GetString()!;

        var seen = new List<string>();
        for (var i = 0; i < 100 && !seen.Contains("DONE"); i++)
        {
            var status = (await SendJson(http, token, HttpMethod.Get, new Uri(emulator.BaseAddress, $"feeds/2021-06-30/feeds/{feedId}"), null))
                .GetProperty("processingStatus").GetString()!;
            if (seen.Count == 0 || seen[^1] != status)
            {
                seen.Add(status);
            }
            await Task.Delay(50);
        }

        Assert.Equal(["IN_QUEUE", "IN_PROGRESS", "DONE"], seen);
        Assert.Equal(3, emulator.QuantityOf("SKU-1"));
    }

    private static async Task PatchDirectlyAsync(HttpClient http, AmazonEmulator emulator, string sku, long quantity)
    {
        var token = await TokenAsync(http, emulator);
        using var request = new HttpRequestMessage(HttpMethod.Patch,
            new Uri(emulator.BaseAddress, $"listings/2021-08-01/items/{emulator.Options.SellerId}/{sku}?marketplaceIds={Marketplace}"))
        {
            Content = new StringContent(
                $$"""{"productType":"PRODUCT","patches":[{"op":"replace","path":"/attributes/fulfillment_availability","value":[{"fulfillment_channel_code":"DEFAULT","quantity":{{quantity}}}]}]}""",
                Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("x-amz-access-token", token);
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    private static async Task<string> TokenAsync(HttpClient http, AmazonEmulator emulator)
    {
        using var form = new FormUrlEncodedContent(
        [
            new("grant_type", "refresh_token"),
            new("refresh_token", emulator.Options.RefreshToken),
            new("client_id", emulator.Options.ClientId),
            new("client_secret", emulator.Options.ClientSecret),
        ]);
        using var response = await http.PostAsync(emulator.TokenUrl, form);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return json.RootElement.GetProperty("access_token").GetString()!;
    }

    private static async Task<JsonElement> SendJson(HttpClient http, string token, HttpMethod method, Uri url, string? body)
    {
        using var request = new HttpRequestMessage(method, url);
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }
        request.Headers.Add("x-amz-access-token", token);
        using var response = await http.SendAsync(request);
        Assert.True(response.IsSuccessStatusCode, $"{method} {url} answered {(int)response.StatusCode}");
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return json.RootElement.Clone();
    }
}
