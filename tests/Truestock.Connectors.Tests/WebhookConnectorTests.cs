using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Truestock.Connectors.Emulators;
using Truestock.Connectors.Webhook;

namespace Truestock.Connectors.Tests;

public sealed class WebhookConnectorTests
{
    private const string Secret = "emulator-webhook-secret";

    [Fact]
    public async Task update_is_delivered_signed_with_the_channel_version_and_idempotency_headers()
    {
        await using var h = await Harness.StartAsync();

        var outcome = Assert.Single(await h.PublishAsync(new AtsUpdate("SKU-1", 12, 7, Urgent: true)));

        Assert.Equal(new PublishOutcome("SKU-1", 7, PublishStatus.Accepted), outcome);
        Assert.Equal(12, h.Receiver.QuantityOf("SKU-1"));
        Assert.Equal(7, h.Receiver.VersionOf("SKU-1"));
        var delivery = Assert.IsType<WebhookDelivery>(h.Receiver.LastDelivery);
        Assert.Equal("erp", delivery.Headers["X-Truestock-Channel"]);
        Assert.Equal("7", delivery.Headers["X-Truestock-Version"]);
        Assert.Equal("erp:SKU-1:7", delivery.Headers["Idempotency-Key"]);
        Assert.StartsWith("application/json", delivery.Headers["Content-Type"], StringComparison.Ordinal);
        Assert.Equal(1, Interlocked.Read(ref h.Connector.Counters.Calls));
    }

    [Fact]
    public async Task body_has_the_documented_fields()
    {
        await using var h = await Harness.StartAsync();

        await h.PublishAsync(new AtsUpdate("SKU-1", 0, 3, Urgent: true));

        using var body = JsonDocument.Parse(h.Receiver.LastDelivery!.Body);
        var root = body.RootElement;
        Assert.Equal(["channelId", "sku", "available", "version", "urgent", "sentAt"], root.EnumerateObject().Select(p => p.Name));
        Assert.Equal("erp", root.GetProperty("channelId").GetString());
        Assert.Equal("SKU-1", root.GetProperty("sku").GetString());
        Assert.Equal(0, root.GetProperty("available").GetInt64());
        Assert.Equal(3, root.GetProperty("version").GetInt64());
        Assert.True(root.GetProperty("urgent").GetBoolean());
        Assert.True(root.GetProperty("sentAt").TryGetDateTimeOffset(out var sentAt));
        Assert.Equal(TimeSpan.Zero, sentAt.Offset);
    }

    [Fact]
    public async Task signature_verifies_with_the_documented_algorithm()
    {
        await using var h = await Harness.StartAsync();

        await h.PublishAsync(new AtsUpdate("SKU-1", 5, 1, Urgent: false));

        var delivery = h.Receiver.LastDelivery!;
        Assert.True(DocumentedVerify(Secret, delivery.Body, delivery.Headers["X-Truestock-Signature"]));
        Assert.False(DocumentedVerify("another-secret", delivery.Body, delivery.Headers["X-Truestock-Signature"]));
        var tampered = delivery.Body.ToArray();
        tampered[^2] ^= 1;
        Assert.False(DocumentedVerify(Secret, tampered, delivery.Headers["X-Truestock-Signature"]));
        Assert.Matches("^sha256=[0-9a-f]{64}$", delivery.Headers["X-Truestock-Signature"]);
    }

    [Fact]
    public async Task custom_signature_header_is_used()
    {
        await using var h = await Harness.StartAsync(new WebhookEmulatorOptions { SignatureHeader = "X-Erp-Signature" }, "\"header\": \"X-Erp-Signature\"");

        var outcome = Assert.Single(await h.PublishAsync(new AtsUpdate("SKU-1", 5, 1, Urgent: false)));

        Assert.Equal(PublishStatus.Accepted, outcome.Status);
        Assert.False(h.Receiver.LastDelivery!.Headers.ContainsKey("X-Truestock-Signature"));
    }

    [Fact]
    public async Task wrong_secret_is_rejected_by_the_receiver_and_ends_permanent()
    {
        await using var h = await Harness.StartAsync(secret: "not-the-receivers-secret");

        var outcome = Assert.Single(await h.PublishAsync(new AtsUpdate("SKU-1", 5, 1, Urgent: true)));

        Assert.Equal(PublishStatus.Permanent, outcome.Status);
        Assert.Contains("HTTP 401", outcome.Error, StringComparison.Ordinal);
        Assert.Contains("bad-signature", outcome.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("not-the-receivers-secret", outcome.Error, StringComparison.Ordinal);
        Assert.Equal(1, h.Receiver.SignatureFailures);
        Assert.Null(h.Receiver.QuantityOf("SKU-1"));
    }

    [Fact]
    public async Task missing_secret_is_permanent_without_sending()
    {
        await using var h = await Harness.StartAsync(secret: null);

        var outcome = Assert.Single(await h.PublishAsync(new AtsUpdate("SKU-1", 5, 1, Urgent: true)));

        Assert.Equal(PublishStatus.Permanent, outcome.Status);
        Assert.Contains("'secret'", outcome.Error, StringComparison.Ordinal);
        Assert.Equal(0, h.Receiver.Requests);
    }

    [Fact]
    public async Task stale_version_is_ignored_by_a_well_behaved_receiver()
    {
        await using var h = await Harness.StartAsync();

        var newer = await h.PublishAsync(new AtsUpdate("SKU-1", 5, 2, Urgent: false));
        var older = await h.PublishAsync(new AtsUpdate("SKU-1", 9, 1, Urgent: false));

        // Both are delivered (the receiver acknowledges), but the lower version never overwrites the higher one.
        Assert.Equal(PublishStatus.Accepted, Assert.Single(newer).Status);
        Assert.Equal(PublishStatus.Accepted, Assert.Single(older).Status);
        Assert.Equal(5, h.Receiver.QuantityOf("SKU-1"));
        Assert.Equal(2, h.Receiver.VersionOf("SKU-1"));
        Assert.Equal(1, h.Receiver.StaleIgnored);
        Assert.Equal(1, h.Receiver.UpdatesApplied);
    }

    [Fact]
    public async Task repeated_delivery_of_a_version_is_deduplicated_by_the_receiver()
    {
        await using var h = await Harness.StartAsync();

        await h.PublishAsync(new AtsUpdate("SKU-1", 5, 2, Urgent: false));
        await h.PublishAsync(new AtsUpdate("SKU-1", 5, 2, Urgent: false));

        Assert.Equal(1, h.Receiver.UpdatesApplied);
        Assert.Equal(1, h.Receiver.Duplicates);
    }

    [Fact]
    public async Task throttled_call_is_retried_after_retry_after()
    {
        await using var h = await Harness.StartAsync();
        h.Receiver.ThrottleNext(1, TimeSpan.FromSeconds(1));

        var outcome = Assert.Single(await h.PublishAsync(new AtsUpdate("SKU-1", 4, 1, Urgent: true)));

        Assert.Equal(PublishStatus.Accepted, outcome.Status);
        Assert.Equal(4, h.Receiver.QuantityOf("SKU-1"));
        Assert.Equal(1, h.Receiver.ThrottledResponses);
        Assert.Equal(1, Interlocked.Read(ref h.Connector.Counters.Throttles));
        Assert.Equal(2, h.Receiver.Requests);
    }

    [Fact]
    public async Task persistent_throttling_ends_transient()
    {
        await using var h = await Harness.StartAsync();
        h.Receiver.ThrottleNext(100, TimeSpan.FromMilliseconds(1));

        var outcome = Assert.Single(await h.PublishAsync(new AtsUpdate("SKU-1", 4, 1, Urgent: true)));

        Assert.Equal(PublishStatus.Transient, outcome.Status);
        Assert.Contains("HTTP 429", outcome.Error, StringComparison.Ordinal);
        Assert.Equal(WebhookConnector.ThrottleRetriesMax + 1, h.Receiver.ThrottledResponses);
    }

    [Fact]
    public async Task retry_after_longer_than_the_connector_waits_ends_transient_at_once()
    {
        await using var h = await Harness.StartAsync();
        h.Receiver.ThrottleNext(1, TimeSpan.FromMinutes(5));

        var outcome = Assert.Single(await h.PublishAsync(new AtsUpdate("SKU-1", 4, 1, Urgent: true)));

        Assert.Equal(PublishStatus.Transient, outcome.Status);
        Assert.Contains("HTTP 429", outcome.Error, StringComparison.Ordinal);
        Assert.Equal(1, h.Receiver.Requests);
    }

    [Fact]
    public async Task server_error_is_retried_and_then_accepted()
    {
        await using var h = await Harness.StartAsync();
        h.Receiver.Faults.FailNext(1);

        var outcome = Assert.Single(await h.PublishAsync(new AtsUpdate("SKU-1", 4, 1, Urgent: true)));

        Assert.Equal(PublishStatus.Accepted, outcome.Status);
        Assert.Equal(4, h.Receiver.QuantityOf("SKU-1"));
        Assert.Equal(1, Interlocked.Read(ref h.Connector.Counters.Failures));
    }

    [Fact]
    public async Task persistent_server_errors_give_transient_with_the_status()
    {
        await using var h = await Harness.StartAsync();
        h.Receiver.Faults.FailNext(100);

        var outcome = Assert.Single(await h.PublishAsync(new AtsUpdate("SKU-1", 4, 1, Urgent: true)));

        Assert.Equal(PublishStatus.Transient, outcome.Status);
        Assert.Contains("HTTP 503", outcome.Error, StringComparison.Ordinal);
        Assert.Equal(WebhookConnector.TransientRetriesMax + 1, h.Receiver.Requests);
    }

    [Fact]
    public async Task timeouts_give_transient()
    {
        await using var h = await Harness.StartAsync(settings: "\"timeoutSeconds\": 0.3");
        h.Receiver.Faults.TimeOutNext(100);

        var outcome = Assert.Single(await h.PublishAsync(new AtsUpdate("SKU-1", 4, 1, Urgent: true)));

        Assert.Equal(PublishStatus.Transient, outcome.Status);
        Assert.Contains("did not answer", outcome.Error, StringComparison.Ordinal);
        Assert.Null(h.Receiver.QuantityOf("SKU-1"));
    }

    [Fact]
    public async Task unreachable_receiver_gives_transient()
    {
        var gone = await WebhookEmulator.StartAsync();
        var url = gone.Url;
        await gone.DisposeAsync();
        await using var h = await Harness.StartAsync(url: url);

        var outcome = Assert.Single(await h.PublishAsync(new AtsUpdate("SKU-1", 4, 1, Urgent: true)));

        Assert.Equal(PublishStatus.Transient, outcome.Status);
        Assert.Contains("request failed", outcome.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task rejected_update_is_permanent_with_the_status_and_a_bounded_body_prefix()
    {
        await using var h = await Harness.StartAsync();
        h.Receiver.Faults.BreakSku("SKU-1");

        var outcomes = await h.PublishAsync(new AtsUpdate("SKU-1", 4, 1, Urgent: true), new AtsUpdate("SKU-2", 6, 1, Urgent: false));

        Assert.Equal(PublishStatus.Permanent, outcomes[0].Status);
        Assert.Contains("HTTP 422", outcomes[0].Error, StringComparison.Ordinal);
        Assert.Contains("sku SKU-1 is blocked", outcomes[0].Error, StringComparison.Ordinal);
        Assert.InRange(outcomes[0].Error!.Length, 1, 400);
        Assert.Equal(PublishStatus.Accepted, outcomes[1].Status);
        Assert.Equal(1, h.Receiver.Requests - 1); // the rejected update is not retried
    }

    [Fact]
    public async Task unknown_sku_at_a_receiver_that_requires_listings_is_permanent()
    {
        await using var h = await Harness.StartAsync(new WebhookEmulatorOptions { RequireListings = true });
        h.Receiver.AddListing("LISTED", 1);

        var outcomes = await h.PublishAsync(new AtsUpdate("LISTED", 2, 1, Urgent: false), new AtsUpdate("NOT-LISTED", 2, 1, Urgent: false));

        Assert.Equal(PublishStatus.Accepted, outcomes[0].Status);
        Assert.Equal(PublishStatus.Permanent, outcomes[1].Status);
        Assert.Contains("HTTP 404", outcomes[1].Error, StringComparison.Ordinal);
        Assert.Equal(2, h.Receiver.QuantityOf("LISTED"));
    }

    [Fact]
    public async Task a_burst_of_hundreds_converges_with_few_throttles()
    {
        await using var h = await Harness.StartAsync(
            new WebhookEmulatorOptions { RequestsPerWindow = 200, RateWindow = TimeSpan.FromSeconds(1) },
            "\"requestsPerSecondMax\": 90, \"concurrencyMax\": 8");
        var updates = Enumerable.Range(0, 400).Select(i => new AtsUpdate($"SKU-{i}", i % 13, 1, Urgent: i % 10 == 0)).ToArray();

        var outcomes = new List<PublishOutcome>();
        foreach (var batch in updates.Chunk(h.Connector.BatchSizeMax))
        {
            outcomes.AddRange(await h.PublishAsync(batch));
        }

        Assert.Equal(updates.Select(u => (u.Sku, u.Version)), outcomes.Select(o => (o.Sku, o.Version)));
        Assert.All(outcomes, o => Assert.Equal(PublishStatus.Accepted, o.Status));
        Assert.All(updates, u => Assert.Equal(u.Quantity, h.Receiver.QuantityOf(u.Sku)));
        Assert.InRange(h.Receiver.ThrottledResponses, 0, 5);
    }

    [Fact]
    public async Task a_batch_larger_than_batch_size_max_is_refused_as_a_bug()
    {
        await using var h = await Harness.StartAsync(settings: "\"batchSizeMax\": 2");
        var updates = Enumerable.Range(0, 3).Select(i => new AtsUpdate($"SKU-{i}", 1, 1, Urgent: false)).ToArray();

        await Assert.ThrowsAsync<ArgumentException>(() => h.Connector.PublishAsync(updates, CancellationToken.None));
        Assert.Equal(0, h.Receiver.Requests);
    }

    [Theory]
    [InlineData("""{"kind":"webhook","credentials":"erp"}""", "\"url\" is required")]
    [InlineData("""{"kind":"webhook","url":"ftp://example.com/x","credentials":"erp"}""", "\"url\" must be an absolute http or https URL")]
    [InlineData("""{"kind":"webhook","url":"/relative","credentials":"erp"}""", "\"url\"")]
    [InlineData("""{"kind":"webhook","url":"https://user:pw@example.com/x","credentials":"erp"}""", "\"url\"")]
    [InlineData("""{"kind":"webhook","url":"https://example.com/x","secretName":""}""", "\"secretName\"")]
    [InlineData("""{"kind":"webhook","url":"https://example.com/x","credentials":"erp","header":"Bad Header"}""", "\"header\"")]
    [InlineData("""{"kind":"webhook","url":"https://example.com/x","credentials":"erp","requestsPerSecondMax":0}""", "\"requestsPerSecondMax\"")]
    [InlineData("""{"kind":"webhook","url":"https://example.com/x","credentials":"erp","batchSizeMax":0}""", "\"batchSizeMax\" must be an integer from 1 to 10000")]
    [InlineData("""{"kind":"webhook","url":"https://example.com/x","credentials":"erp","concurrencyMax":1.5}""", "\"concurrencyMax\"")]
    [InlineData("""{"kind":"webhook","url":"https://example.com/x","credentials":"erp","timeoutSeconds":"10"}""", "\"timeoutSeconds\"")]
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
            {"kind":"webhook","url":"https://erp.example.com/truestock","lowStockThreshold":3,"attemptsMax":5}
            """);

        Assert.Null(ConnectorFactory.Validate(document.RootElement));
        using var http = new HttpClient();
        var connector = ConnectorFactory.Create(document.RootElement, new ConnectorContext("erp", http, TimeProvider.System, _ => null));
        Assert.IsType<WebhookConnector>(connector);
        Assert.Equal(100, connector.BatchSizeMax);
    }

    /// <summary>The receiver's verification exactly as docs/connectors/webhook.md shows it (C#).</summary>
    private static bool DocumentedVerify(string secret, byte[] rawBody, string signatureHeader)
    {
        var mac = HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), rawBody);
        var expected = "sha256=" + Convert.ToHexString(mac).ToLowerInvariant();
        return CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(expected), Encoding.ASCII.GetBytes(signatureHeader));
    }

    private sealed class Harness : IAsyncDisposable
    {
        private readonly HttpClient _http = new();

        private Harness(WebhookEmulator receiver) => Receiver = receiver;

        public WebhookEmulator Receiver { get; }

        public IChannelConnector Connector { get; private set; } = null!;

        public static async Task<Harness> StartAsync(WebhookEmulatorOptions? options = null, string settings = "", string? secret = Secret, Uri? url = null)
        {
            var harness = new Harness(await WebhookEmulator.StartAsync(options));
            var json = $$"""{"kind":"webhook","url":"{{url ?? harness.Receiver.Url}}","credentials":"erp-hook"{{(settings.Length > 0 ? ", " + settings : "")}}}""";
            using var document = JsonDocument.Parse(json);
            harness.Connector = ConnectorFactory.Create(document.RootElement,
                new ConnectorContext("erp", harness._http, TimeProvider.System, name => name == "secret" ? secret : null));
            return harness;
        }

        public Task<IReadOnlyList<PublishOutcome>> PublishAsync(params AtsUpdate[] updates) =>
            Connector.PublishAsync(updates, CancellationToken.None);

        public async ValueTask DisposeAsync()
        {
            await Connector.DisposeAsync();
            _http.Dispose();
            await Receiver.DisposeAsync();
        }
    }
}
