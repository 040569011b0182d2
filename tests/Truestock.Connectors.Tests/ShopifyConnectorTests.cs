using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Truestock.Connectors;
using Truestock.Connectors.Emulators;

namespace Truestock.Connectors.Tests;

/// <summary>The Shopify connector against the Shopify emulator, through the public connector surface.</summary>
public sealed class ShopifyConnectorTests
{
    private const string Token = "shpat_test_token";

    private static readonly Dictionary<string, string> TokenCredentials = new() { ["accessToken"] = Token };

    // ------------------------------------------------------------ convergence and rate limits

    [Fact]
    public async Task burst_of_hundreds_of_skus_converges_with_few_throttles()
    {
        await using var emulator = await StartAsync(o => o.RestoreRate = 500);
        var skus = AddListings(emulator, 600);
        using var http = new HttpClient();
        await using var connector = Create(emulator, http);

        var outcomes = new List<PublishOutcome>();
        foreach (var batch in skus.Chunk(connector.BatchSizeMax))
        {
            outcomes.AddRange(await connector.PublishAsync([.. batch.Select(s => Update(s, QuantityFor(s), 1))], CancellationToken.None));
        }

        Assert.All(outcomes, o => Assert.Equal(PublishStatus.Accepted, o.Status));
        Assert.All(skus, s => Assert.Equal(QuantityFor(s), emulator.QuantityOf(s)));
        Assert.Equal(600, emulator.UpdatesApplied);
        Assert.InRange(emulator.ThrottledResponses, 0, 3);
    }

    [Fact]
    public async Task throttle_status_is_honoured_so_a_concurrent_burst_larger_than_the_bucket_is_paced()
    {
        // The connector is configured for a far larger bucket than the shop has; only by adopting
        // the throttleStatus Shopify reports does it avoid being throttled on most calls.
        await using var emulator = await StartAsync(o =>
        {
            o.BucketSize = 300;
            o.RestoreRate = 600;
        });
        var skus = AddListings(emulator, 1000);
        using var http = new HttpClient();
        await using var connector = Create(emulator, http, """ "bucketSize": 5000, "restoreRate": 5000 """);

        var publications = skus.Chunk(connector.BatchSizeMax)
            .Select(batch => connector.PublishAsync([.. batch.Select(s => Update(s, QuantityFor(s), 1))], CancellationToken.None));
        var outcomes = (await Task.WhenAll(publications)).SelectMany(o => o).ToList();

        Assert.All(outcomes, o => Assert.Equal(PublishStatus.Accepted, o.Status));
        Assert.All(skus, s => Assert.Equal(QuantityFor(s), emulator.QuantityOf(s)));
        Assert.InRange(emulator.ThrottledResponses, 0, 8);
        Assert.Equal(emulator.ThrottledResponses, Interlocked.Read(ref connector.Counters.Throttles));
    }

    [Fact]
    public async Task throttled_answer_is_retried_once_the_bucket_has_restored()
    {
        await using var emulator = await StartAsync(o =>
        {
            o.BucketSize = 200;
            o.RestoreRate = 400;
        });
        var skus = AddListings(emulator, 10);
        using var http = new HttpClient();
        await using var connector = Create(emulator, http);
        emulator.DrainBucket();

        var outcomes = await connector.PublishAsync([.. skus.Select(s => Update(s, 42, 1))], CancellationToken.None);

        Assert.All(outcomes, o => Assert.Equal(PublishStatus.Accepted, o.Status));
        Assert.All(skus, s => Assert.Equal(42, emulator.QuantityOf(s)));
        Assert.True(emulator.ThrottledResponses >= 1);
        Assert.Equal(emulator.ThrottledResponses, Interlocked.Read(ref connector.Counters.Throttles));
    }

    [Fact]
    public async Task sku_lookup_is_cached_so_a_second_publish_does_not_search_the_catalogue_again()
    {
        await using var emulator = await StartAsync();
        var skus = AddListings(emulator, 100);
        using var http = new HttpClient();
        await using var connector = Create(emulator, http);

        await connector.PublishAsync([.. skus.Select(s => Update(s, 5, 1))], CancellationToken.None);
        var searches = emulator.CatalogQueries;
        var outcomes = await connector.PublishAsync([.. skus.Select(s => Update(s, 6, 2))], CancellationToken.None);

        Assert.Equal(2, searches);
        Assert.Equal(searches, emulator.CatalogQueries);
        Assert.All(outcomes, o => Assert.Equal(PublishStatus.Accepted, o.Status));
        Assert.All(skus, s => Assert.Equal(6, emulator.QuantityOf(s)));
        Assert.Equal(200, emulator.UpdatesApplied);
    }

    // ------------------------------------------------------------ permanent failures

    [Fact]
    public async Task unknown_sku_is_permanent_with_an_error_naming_it_while_the_rest_of_the_batch_is_published()
    {
        await using var emulator = await StartAsync();
        emulator.AddListing("KNOWN-1");
        using var http = new HttpClient();
        await using var connector = Create(emulator, http);

        var outcomes = await connector.PublishAsync([Update("KNOWN-1", 3, 1), Update("NO-SUCH-SKU", 4, 1)], CancellationToken.None);

        Assert.Equal(PublishStatus.Accepted, outcomes[0].Status);
        Assert.Equal(PublishStatus.Permanent, outcomes[1].Status);
        Assert.Equal(("NO-SUCH-SKU", 1L), (outcomes[1].Sku, outcomes[1].Version));
        Assert.Contains("SKU 'NO-SUCH-SKU' not found", outcomes[1].Error, StringComparison.Ordinal);
        Assert.Equal(3, emulator.QuantityOf("KNOWN-1"));
    }

    [Fact]
    public async Task item_not_stocked_at_the_location_is_permanent()
    {
        await using var emulator = await StartAsync();
        emulator.AddListing("ELSEWHERE", stocked: false);
        using var http = new HttpClient();
        await using var connector = Create(emulator, http);

        var outcome = Assert.Single(await connector.PublishAsync([Update("ELSEWHERE", 3, 1)], CancellationToken.None));

        Assert.Equal(PublishStatus.Permanent, outcome.Status);
        Assert.StartsWith("ITEM_NOT_STOCKED_AT_LOCATION", outcome.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task sku_listed_twice_in_shopify_is_permanent_because_it_is_ambiguous()
    {
        await using var emulator = await StartAsync();
        emulator.AddListing("TWICE");
        emulator.AddListing("TWICE");
        using var http = new HttpClient();
        await using var connector = Create(emulator, http);

        var outcome = Assert.Single(await connector.PublishAsync([Update("TWICE", 3, 1)], CancellationToken.None));

        Assert.Equal(PublishStatus.Permanent, outcome.Status);
        Assert.Contains("is on 2 Shopify inventory items", outcome.Error, StringComparison.Ordinal);
        Assert.Equal(0, emulator.UpdatesApplied);
    }

    [Fact]
    public async Task listing_removed_after_caching_gives_shopify_error_and_is_found_again_once_restored()
    {
        await using var emulator = await StartAsync();
        emulator.AddListing("FLAKY");
        using var http = new HttpClient();
        await using var connector = Create(emulator, http);
        await connector.PublishAsync([Update("FLAKY", 1, 1)], CancellationToken.None);

        emulator.Faults.BreakSku("FLAKY");
        var broken = Assert.Single(await connector.PublishAsync([Update("FLAKY", 2, 2)], CancellationToken.None));
        emulator.Faults.Heal("FLAKY");
        var searchesBefore = emulator.CatalogQueries;
        var healed = Assert.Single(await connector.PublishAsync([Update("FLAKY", 3, 3)], CancellationToken.None));

        Assert.Equal(PublishStatus.Permanent, broken.Status);
        Assert.StartsWith("INVALID_INVENTORY_ITEM: The specified inventory item could not be found.", broken.Error, StringComparison.Ordinal);
        Assert.Equal(PublishStatus.Accepted, healed.Status);
        Assert.Equal(searchesBefore + 1, emulator.CatalogQueries);
        Assert.Equal(3, emulator.QuantityOf("FLAKY"));
    }

    [Fact]
    public async Task bad_access_token_is_permanent_with_shopify_error_text()
    {
        await using var emulator = await StartAsync();
        emulator.AddListing("A");
        using var http = new HttpClient();
        await using var connector = Create(emulator, http, credentials: new() { ["accessToken"] = "shpat_wrong" });

        var outcome = Assert.Single(await connector.PublishAsync([Update("A", 3, 1)], CancellationToken.None));

        Assert.Equal(PublishStatus.Permanent, outcome.Status);
        Assert.EndsWith("HTTP 401: [API] Invalid API key or access token (unrecognized login or wrong password)", outcome.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("shpat_wrong", outcome.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task missing_credentials_are_permanent_without_calling_shopify()
    {
        await using var emulator = await StartAsync();
        using var http = new HttpClient();
        await using var connector = Create(emulator, http, credentials: []);

        var outcome = Assert.Single(await connector.PublishAsync([Update("A", 3, 1)], CancellationToken.None));

        Assert.Equal(PublishStatus.Permanent, outcome.Status);
        Assert.Contains("\"accessToken\"", outcome.Error, StringComparison.Ordinal);
        Assert.Equal(0, emulator.Requests);
    }

    [Fact]
    public async Task client_credentials_token_is_fetched_and_fetched_again_once_after_a_401()
    {
        await using var emulator = await StartAsync();
        emulator.AddListing("A");
        using var http = new HttpClient();
        await using var connector = Create(emulator, http, credentials: new() { ["clientId"] = "emulator-client-id", ["clientSecret"] = "emulator-client-secret" });

        var first = Assert.Single(await connector.PublishAsync([Update("A", 3, 1)], CancellationToken.None));
        emulator.RevokeIssuedTokens();
        var second = Assert.Single(await connector.PublishAsync([Update("A", 4, 2)], CancellationToken.None));

        Assert.Equal(PublishStatus.Accepted, first.Status);
        Assert.Equal(PublishStatus.Accepted, second.Status);
        Assert.Equal(2, emulator.TokensIssued);
        Assert.Equal(4, emulator.QuantityOf("A"));
    }

    [Fact]
    public async Task wrong_client_secret_is_permanent_with_the_oauth_error()
    {
        await using var emulator = await StartAsync();
        using var http = new HttpClient();
        await using var connector = Create(emulator, http, credentials: new() { ["clientId"] = "emulator-client-id", ["clientSecret"] = "not-the-secret" });

        var outcome = Assert.Single(await connector.PublishAsync([Update("A", 3, 1)], CancellationToken.None));

        Assert.Equal(PublishStatus.Permanent, outcome.Status);
        Assert.Contains("invalid_client", outcome.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("not-the-secret", outcome.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task unknown_location_name_is_permanent_and_a_known_one_is_used()
    {
        await using var emulator = await StartAsync();
        emulator.AddListing("A");
        using var http = new HttpClient();
        await using var unknown = Create(emulator, http, """ "locationName": "Nowhere" """, locationId: null);
        await using var known = Create(emulator, http, """ "locationName": "Main warehouse" """, locationId: null);

        var missing = Assert.Single(await unknown.PublishAsync([Update("A", 3, 1)], CancellationToken.None));
        var found = Assert.Single(await known.PublishAsync([Update("A", 4, 1)], CancellationToken.None));

        Assert.Equal(PublishStatus.Permanent, missing.Status);
        Assert.Contains("no Shopify location is named 'Nowhere'", missing.Error, StringComparison.Ordinal);
        Assert.Equal(PublishStatus.Accepted, found.Status);
        Assert.Equal(4, emulator.QuantityOf("A"));
    }

    // ------------------------------------------------------------ transient failures

    [Fact]
    public async Task transient_server_error_is_retried_and_the_update_accepted()
    {
        await using var emulator = await StartAsync();
        emulator.AddListing("A");
        using var http = new HttpClient();
        await using var connector = Create(emulator, http);
        emulator.Faults.FailNext(1);

        var outcome = Assert.Single(await connector.PublishAsync([Update("A", 3, 1)], CancellationToken.None));

        Assert.Equal(PublishStatus.Accepted, outcome.Status);
        Assert.Equal(1, Interlocked.Read(ref connector.Counters.Failures));
        Assert.Equal(3, emulator.QuantityOf("A"));
    }

    [Fact]
    public async Task persistent_server_errors_give_transient_outcomes()
    {
        await using var emulator = await StartAsync();
        emulator.AddListing("A");
        emulator.AddListing("B");
        using var http = new HttpClient();
        await using var connector = Create(emulator, http);
        emulator.Faults.FailNext(100);

        var outcomes = await connector.PublishAsync([Update("A", 3, 1), Update("B", 4, 1)], CancellationToken.None);

        Assert.All(outcomes, o =>
        {
            Assert.Equal(PublishStatus.Transient, o.Status);
            Assert.Contains("HTTP 503", o.Error, StringComparison.Ordinal);
        });
        Assert.Equal(0, emulator.UpdatesApplied);
    }

    [Fact]
    public async Task timeouts_beyond_the_retry_limit_give_transient_outcomes()
    {
        await using var emulator = await StartAsync();
        emulator.AddListing("A");
        using var http = new HttpClient();
        await using var connector = Create(emulator, http, """ "timeoutSeconds": 0.3 """);
        emulator.Faults.TimeOutNext(100);

        var outcome = Assert.Single(await connector.PublishAsync([Update("A", 3, 1)], CancellationToken.None));

        Assert.Equal(PublishStatus.Transient, outcome.Status);
        Assert.Contains("no answer within 0.3 s", outcome.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task lost_answer_is_retried_with_the_same_idempotency_key_so_shopify_applies_it_once()
    {
        await using var emulator = await StartAsync();
        var skus = AddListings(emulator, 5);
        using var http = new HttpClient();
        await using var connector = Create(emulator, http, """ "timeoutSeconds": 0.5 """);
        await connector.PublishAsync([.. skus.Select(s => Update(s, 1, 1))], CancellationToken.None);

        // The mutation is applied, then its answer is lost; the retry must not be refused as stale.
        emulator.Faults.TimeOutNext(1);
        var outcomes = await connector.PublishAsync([.. skus.Select(s => Update(s, 2, 2))], CancellationToken.None);

        Assert.All(outcomes, o => Assert.Equal(PublishStatus.Accepted, o.Status));
        Assert.All(skus, s => Assert.Equal(2, emulator.QuantityOf(s)));
        Assert.Equal(1, emulator.IdempotentReplays);
        Assert.Equal(0, emulator.StaleRejections);
        Assert.Equal(10, emulator.UpdatesApplied);
    }

    // ------------------------------------------------------------ ordering and compare-and-swap

    [Fact]
    public async Task lower_version_never_overwrites_a_higher_one()
    {
        await using var emulator = await StartAsync();
        emulator.AddListing("A");
        using var http = new HttpClient();
        await using var connector = Create(emulator, http);

        var newer = Assert.Single(await connector.PublishAsync([Update("A", 7, 2)], CancellationToken.None));
        var older = Assert.Single(await connector.PublishAsync([Update("A", 5, 1)], CancellationToken.None));

        Assert.Equal(PublishStatus.Accepted, newer.Status);
        Assert.Equal((PublishStatus.Accepted, 1L), (older.Status, older.Version));
        Assert.Equal(7, emulator.QuantityOf("A"));
        Assert.Equal(1, emulator.UpdatesApplied);
    }

    [Fact]
    public async Task quantity_changed_at_shopify_is_caught_by_compare_and_swap_and_set_from_a_fresh_read()
    {
        await using var emulator = await StartAsync();
        emulator.AddListing("A", available: 10);
        using var http = new HttpClient();
        await using var connector = Create(emulator, http);
        await connector.PublishAsync([Update("A", 5, 1)], CancellationToken.None);

        emulator.SetAvailable("A", 4); // an order taken at Shopify
        var outcome = Assert.Single(await connector.PublishAsync([Update("A", 9, 2)], CancellationToken.None));

        Assert.Equal(PublishStatus.Accepted, outcome.Status);
        Assert.Equal(9, emulator.QuantityOf("A"));
        Assert.Equal(1, emulator.StaleRejections);
        Assert.Equal(2, emulator.UpdatesApplied);
    }

    [Fact]
    public async Task older_api_versions_get_compare_quantity_instead_of_change_from_quantity()
    {
        await using var emulator = await StartAsync();
        emulator.AddListing("A", available: 10);
        using var http = new HttpClient();
        await using var connector = Create(emulator, http, """ "apiVersion": "2025-07" """);
        await connector.PublishAsync([Update("A", 5, 1)], CancellationToken.None);

        emulator.SetAvailable("A", 4);
        var outcome = Assert.Single(await connector.PublishAsync([Update("A", 9, 2)], CancellationToken.None));

        Assert.Equal(PublishStatus.Accepted, outcome.Status);
        Assert.Equal(9, emulator.QuantityOf("A"));
        Assert.Equal(1, emulator.StaleRejections);
    }

    [Fact]
    public async Task compare_and_swap_can_be_switched_off_for_a_hub_that_owns_the_quantity()
    {
        await using var emulator = await StartAsync();
        emulator.AddListing("A", available: 10);
        using var http = new HttpClient();
        await using var connector = Create(emulator, http, """ "compareAndSwap": false """);
        await connector.PublishAsync([Update("A", 5, 1)], CancellationToken.None);

        emulator.SetAvailable("A", 4);
        var outcome = Assert.Single(await connector.PublishAsync([Update("A", 9, 2)], CancellationToken.None));

        Assert.Equal(PublishStatus.Accepted, outcome.Status);
        Assert.Equal(9, emulator.QuantityOf("A"));
        Assert.Equal(0, emulator.StaleRejections);
    }

    // ------------------------------------------------------------ settings

    [Theory]
    [InlineData("""{"kind":"shopify","locationId":"1","credentials":"c"}""", "\"shop\"")]
    [InlineData("""{"kind":"shopify","shop":"acme shop","locationId":"1","credentials":"c"}""", "\"shop\"")]
    [InlineData("""{"kind":"shopify","baseUrl":"ftp://example.com/","locationId":"1","credentials":"c"}""", "\"baseUrl\"")]
    [InlineData("""{"kind":"shopify","shop":"acme","apiVersion":"2024-04","locationId":"1","credentials":"c"}""", "\"apiVersion\"")]
    [InlineData("""{"kind":"shopify","shop":"acme","apiVersion":"2026-05","locationId":"1","credentials":"c"}""", "\"apiVersion\"")]
    [InlineData("""{"kind":"shopify","shop":"acme","credentials":"c"}""", "\"locationId\"")]
    [InlineData("""{"kind":"shopify","shop":"acme","locationId":"warehouse","credentials":"c"}""", "\"locationId\"")]
    [InlineData("""{"kind":"shopify","shop":"acme","locationId":"1","credentials":""}""", "\"credentials\"")]
    [InlineData("""{"kind":"shopify","shop":"acme","locationId":"1","credentials":7}""", "\"credentials\"")]
    [InlineData("""{"kind":"shopify","shop":"acme","locationId":"1","credentials":"c","batchSize":251}""", "\"batchSize\"")]
    [InlineData("""{"kind":"shopify","shop":"acme","locationId":"1","credentials":"c","lookupBatchSize":0}""", "\"lookupBatchSize\"")]
    [InlineData("""{"kind":"shopify","shop":"acme","locationId":"1","credentials":"c","timeoutSeconds":0}""", "\"timeoutSeconds\"")]
    [InlineData("""{"kind":"shopify","shop":"acme","locationId":"1","credentials":"c","reason":"sold"}""", "\"reason\"")]
    [InlineData("""{"kind":"shopify","shop":"acme","locationId":"1","credentials":"c","compareAndSwap":"yes"}""", "\"compareAndSwap\"")]
    [InlineData("""{"kind":"shopify","shop":"acme","locationId":"1","credentials":"c","bucketSize":-1}""", "\"bucketSize\"")]
    public void invalid_settings_are_rejected_with_a_message_naming_the_field(string json, string field)
    {
        using var document = JsonDocument.Parse(json);

        var error = ConnectorFactory.Validate(document.RootElement);

        Assert.NotNull(error);
        Assert.Contains(field, error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task minimal_settings_are_valid_and_batches_follow_shopify_input_limit()
    {
        using var document = JsonDocument.Parse("""{"kind":"shopify","shop":"acme","locationId":"gid://shopify/Location/1","lowStockThreshold":5}""");
        using var http = new HttpClient();

        var error = ConnectorFactory.Validate(document.RootElement);
        await using var connector = ConnectorFactory.Create(document.RootElement, new ConnectorContext("acme", http, TimeProvider.System, _ => null));

        Assert.Null(error);
        Assert.Equal(250, connector.BatchSizeMax);
    }

    [Fact]
    public void creating_with_invalid_settings_throws()
    {
        using var document = JsonDocument.Parse("""{"kind":"shopify","shop":"acme","credentials":"acme"}""");
        using var http = new HttpClient();

        var thrown = Assert.Throws<ArgumentException>(() => ConnectorFactory.Create(document.RootElement, new ConnectorContext("acme", http, TimeProvider.System, _ => null)));

        Assert.Contains("locationId", thrown.Message, StringComparison.Ordinal);
    }

    // ------------------------------------------------------------ the emulator speaks Shopify

    [Fact]
    public async Task emulator_throttles_like_shopify_with_http_200_and_the_cost_extension()
    {
        await using var emulator = await StartAsync();
        emulator.DrainBucket();

        var (status, body) = await PostAsync(emulator, LookupQuery, new JsonObject { ["query"] = "sku:A", ["first"] = 50, ["locationId"] = emulator.LocationId });

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("THROTTLED", (string?)body["errors"]![0]!["extensions"]!["code"]);
        Assert.Equal(153, (double)body["extensions"]!["cost"]!["requestedQueryCost"]!);
        Assert.Null(body["extensions"]!["cost"]!["actualQueryCost"]);
        Assert.Equal(1000, (double)body["extensions"]!["cost"]!["throttleStatus"]!["maximumAvailable"]!);
        Assert.Equal(1, emulator.ThrottledResponses);
    }

    [Fact]
    public async Task emulator_charges_the_requested_cost_and_refunds_the_difference_to_the_actual_cost()
    {
        await using var emulator = await StartAsync(o => o.RestoreRate = 1);
        AddListings(emulator, 10);

        var (_, body) = await PostAsync(emulator, LookupQuery, new JsonObject
        {
            ["query"] = string.Join(" OR ", Enumerable.Range(0, 10).Select(i => $"sku:\"SKU-{i:D5}\"")),
            ["first"] = 50,
            ["locationId"] = emulator.LocationId,
        });

        Assert.Equal(10, body["data"]!["inventoryItems"]!["nodes"]!.AsArray().Count);
        Assert.Equal(153, (double)body["extensions"]!["cost"]!["requestedQueryCost"]!);
        Assert.Equal(33, (double)body["extensions"]!["cost"]!["actualQueryCost"]!);
        Assert.InRange((double)body["extensions"]!["cost"]!["throttleStatus"]!["currentlyAvailable"]!, 966, 1000);
    }

    [Fact]
    public async Task emulator_refuses_a_wrong_token_with_http_401()
    {
        await using var emulator = await StartAsync();

        var (status, body) = await PostAsync(emulator, LookupQuery, [], token: "nope");

        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.Equal("[API] Invalid API key or access token (unrecognized login or wrong password)", (string?)body["errors"]);
    }

    [Fact]
    public async Task emulator_rejects_invalid_variables_the_way_shopify_does()
    {
        await using var emulator = await StartAsync();
        var item = emulator.AddListing("A");
        var input = SetInput(new JsonObject { ["inventoryItemId"] = item, ["locationId"] = emulator.LocationId, ["changeFromQuantity"] = null });

        var (status, body) = await PostAsync(emulator, SetMutation(idempotent: true), new JsonObject { ["input"] = input });

        Assert.Equal(HttpStatusCode.OK, status);
        var error = body["errors"]![0]!;
        Assert.Equal("Variable $input of type InventorySetQuantitiesInput! was provided invalid value for quantities.0.quantity (Expected value to not be null)", (string?)error["message"]);
        Assert.Equal("INVALID_VARIABLE", (string?)error["extensions"]!["code"]);
        Assert.Equal(0, emulator.UpdatesApplied);
    }

    [Fact]
    public async Task emulator_refuses_compare_quantity_in_versions_that_removed_it()
    {
        await using var emulator = await StartAsync();
        var item = emulator.AddListing("A");
        var input = SetInput(new JsonObject { ["inventoryItemId"] = item, ["locationId"] = emulator.LocationId, ["quantity"] = 3, ["compareQuantity"] = 0 });

        var (_, body) = await PostAsync(emulator, SetMutation(idempotent: true), new JsonObject { ["input"] = input });

        Assert.Contains("quantities.0.compareQuantity (Field is not defined on InventoryQuantityInput)", (string?)body["errors"]![0]!["message"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task emulator_requires_an_idempotency_key_from_2026_04()
    {
        await using var emulator = await StartAsync();
        var item = emulator.AddListing("A");
        var input = SetInput(new JsonObject { ["inventoryItemId"] = item, ["locationId"] = emulator.LocationId, ["quantity"] = 3, ["changeFromQuantity"] = 0 });

        var (_, body) = await PostAsync(emulator, SetMutation(idempotent: false), new JsonObject { ["input"] = input });

        Assert.Contains("idempotency key is required", (string?)body["errors"]![0]!["message"], StringComparison.Ordinal);
        Assert.Null(body["data"]!["inventorySetQuantities"]);
        Assert.Equal(0, emulator.UpdatesApplied);
    }

    [Fact]
    public async Task emulator_rejects_input_arrays_longer_than_250()
    {
        await using var emulator = await StartAsync();
        var item = emulator.AddListing("A");
        var input = SetInput([.. Enumerable.Range(0, 251).Select(_ => new JsonObject { ["inventoryItemId"] = item, ["locationId"] = emulator.LocationId, ["quantity"] = 1, ["changeFromQuantity"] = null })]);

        var (_, body) = await PostAsync(emulator, SetMutation(idempotent: true), new JsonObject { ["input"] = input });

        Assert.Equal("MAX_INPUT_SIZE_EXCEEDED", (string?)body["errors"]![0]!["extensions"]!["code"]);
        Assert.Equal(0, emulator.UpdatesApplied);
    }

    [Fact]
    public async Task emulator_reports_unknown_fields_as_shopify_does()
    {
        await using var emulator = await StartAsync();

        var (_, body) = await PostAsync(emulator, "query { inventoryItems(first: 1) { nodes { id colour } } }", []);

        Assert.Equal("Field 'colour' doesn't exist on type 'InventoryItem'", (string?)body["errors"]![0]!["message"]);
        Assert.Equal("undefinedField", (string?)body["errors"]![0]!["extensions"]!["code"]);
    }

    [Fact]
    public async Task emulator_reports_user_errors_per_item_and_applies_nothing_when_one_fails()
    {
        await using var emulator = await StartAsync();
        var good = emulator.AddListing("GOOD", available: 2);
        var input = SetInput(
            new JsonObject { ["inventoryItemId"] = good, ["locationId"] = emulator.LocationId, ["quantity"] = 5, ["changeFromQuantity"] = 2 },
            new JsonObject { ["inventoryItemId"] = "gid://shopify/InventoryItem/999999", ["locationId"] = emulator.LocationId, ["quantity"] = 5, ["changeFromQuantity"] = null });

        var (_, body) = await PostAsync(emulator, SetMutation(idempotent: true), new JsonObject { ["input"] = input });

        var payload = body["data"]!["inventorySetQuantities"]!;
        Assert.Null(payload["inventoryAdjustmentGroup"]);
        Assert.Equal("INVALID_INVENTORY_ITEM", (string?)payload["userErrors"]![0]!["code"]);
        Assert.Equal("""["input","quantities","1","inventoryItemId"]""", payload["userErrors"]![0]!["field"]!.ToJsonString());
        Assert.Equal(2, emulator.QuantityOf("GOOD"));
    }

    [Fact]
    public async Task emulator_accepts_inline_input_literals_and_checks_the_variables_they_embed()
    {
        await using var emulator = await StartAsync();
        var item = emulator.AddListing("A", available: 1);
        string Document(string quantityFields) => $$"""
            mutation Inline($q: Int!) {
              inventorySetQuantities(input: {name: "available", reason: "correction", quantities: [{{quantityFields}}]}) @idempotent(key: "{{Guid.NewGuid()}}") {
                userErrors { code message }
              }
            }
            """;

        var (_, applied) = await PostAsync(emulator, Document($$"""{inventoryItemId: "{{item}}", locationId: "{{emulator.LocationId}}", quantity: $q, changeFromQuantity: 1}"""), new JsonObject { ["q"] = 8 });
        var (_, refused) = await PostAsync(emulator, Document($$"""{inventoryItemId: "{{item}}", quantity: $q, changeFromQuantity: null}"""), new JsonObject { ["q"] = 9 });

        Assert.Empty(applied["data"]!["inventorySetQuantities"]!["userErrors"]!.AsArray());
        Assert.Contains("quantities.0.locationId (Expected value to not be null)", (string?)refused["errors"]![0]!["message"], StringComparison.Ordinal);
        Assert.Equal(8, emulator.QuantityOf("A"));
    }

    // ------------------------------------------------------------ helpers

    private const string LookupQuery = """
        query Lookup($query: String!, $first: Int!, $locationId: ID!) {
          inventoryItems(first: $first, query: $query) {
            nodes { id sku tracked inventoryLevel(locationId: $locationId) { quantities(names: ["available"]) { name quantity } } }
            pageInfo { hasNextPage }
          }
        }
        """;

    private static string SetMutation(bool idempotent) => $$"""
        mutation Set($input: InventorySetQuantitiesInput!) {
          inventorySetQuantities(input: $input){{(idempotent ? $" @idempotent(key: \"{Guid.NewGuid()}\")" : "")}} {
            inventoryAdjustmentGroup { id }
            userErrors { code field message }
          }
        }
        """;

    private static JsonObject SetInput(params JsonObject[] quantities) => new()
    {
        ["name"] = "available",
        ["reason"] = "correction",
        ["quantities"] = new JsonArray([.. quantities]),
    };

    private static async Task<(HttpStatusCode Status, JsonNode Body)> PostAsync(ShopifyEmulator emulator, string query, JsonObject variables, string version = "2026-10", string token = Token)
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(emulator.BaseAddress, $"admin/api/{version}/graphql.json"))
        {
            Content = new StringContent(new JsonObject { ["query"] = query, ["variables"] = variables }.ToJsonString(), Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("X-Shopify-Access-Token", token);
        using var response = await http.SendAsync(request);
        return (response.StatusCode, JsonNode.Parse(await response.Content.ReadAsStringAsync())!);
    }

    private static Task<ShopifyEmulator> StartAsync(Action<ShopifyEmulatorOptions>? configure = null)
    {
        var options = new ShopifyEmulatorOptions { AccessToken = Token };
        configure?.Invoke(options);
        return ShopifyEmulator.StartAsync(options);
    }

    private static List<string> AddListings(ShopifyEmulator emulator, int count)
    {
        var skus = Enumerable.Range(0, count).Select(i => $"SKU-{i:D5}").ToList();
        foreach (var sku in skus)
        {
            emulator.AddListing(sku);
        }
        return skus;
    }

    private static long QuantityFor(string sku) => (sku.GetHashCode(StringComparison.Ordinal) & 0xFF) + 1;

    private static AtsUpdate Update(string sku, long quantity, long version) => new(sku, quantity, version, Urgent: false);

    private static IChannelConnector Create(ShopifyEmulator emulator, HttpClient http, string extra = "", Dictionary<string, string>? credentials = null, string? locationId = "default")
    {
        var location = locationId is null ? "" : $""" "locationId": "{emulator.LocationId}", """;
        var json = $$"""{"kind": "shopify", "baseUrl": "{{emulator.BaseAddress}}", {{location}} "credentials": "test" {{(extra.Length > 0 ? "," + extra : "")}} }""";
        using var document = JsonDocument.Parse(json);
        var secrets = credentials ?? TokenCredentials;
        return ConnectorFactory.Create(document.RootElement, new ConnectorContext("shopify-test", http, TimeProvider.System, name => secrets.GetValueOrDefault(name)));
    }
}
