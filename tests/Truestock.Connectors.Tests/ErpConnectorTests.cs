using Truestock.Connectors.Emulators;
using Truestock.Connectors.Erp;

namespace Truestock.Connectors.Tests;

/// <summary>Both ERP connectors against their emulators: booking, quotas, outages, permanent errors, idempotency, settings.</summary>
public sealed class ErpConnectorTests
{
    private const string ApiKey = "emulator-erp-key";
    private const string OdooPassword = "emulator-odoo-key";
    private static readonly DateTimeOffset At = new(2026, 11, 23, 9, 0, 0, TimeSpan.Zero);

    private static ErpMovement Movement(string eventId, string sku, long delta, string locationId = "WH1", string type = "received") =>
        new($"{eventId}:{locationId}", eventId, sku, locationId, type, Math.Abs(delta), delta, 10, At, "wms");

    private static IErpConnector Rest(GenericErpEmulator erp, double rate = 100, double timeoutSeconds = 5, string? secret = ApiKey) =>
        ErpConnectorFactory.Create(new ErpSettings
        {
            Kind = ErpSettings.KindRest, Url = erp.Url, RequestsPerSecondMax = rate, TimeoutSeconds = timeoutSeconds,
        }, new ErpContext(new HttpClient(), TimeProvider.System, name => name == "apiKey" ? secret : null));

    private static IErpConnector Odoo(OdooEmulator odoo, Dictionary<string, long> locations, double rate = 100, string password = OdooPassword,
        Dictionary<string, long>? products = null) =>
        ErpConnectorFactory.Create(new ErpSettings
        {
            Kind = ErpSettings.KindOdoo, Url = odoo.Url, Database = odoo.Database, Login = odoo.Login, RequestsPerSecondMax = rate,
            TimeoutSeconds = 5, LocationMap = locations, ProductMap = products ?? [],
        }, new ErpContext(new HttpClient(), TimeProvider.System, name => name == "password" ? password : null));

    // ------------------------------------------------------------------ generic REST ERP

    [Fact]
    public async Task rest_connector_books_a_batch_and_returns_the_erps_document_ids()
    {
        await using var erp = await GenericErpEmulator.StartAsync();
        await using var connector = Rest(erp);

        var outcomes = await connector.PostAsync([Movement("ev-1", "A", 5), Movement("ev-2", "A", -2, type: "sold")], CancellationToken.None);

        Assert.All(outcomes, o => Assert.True(o.Status == ErpPostStatus.Posted, o.Error));
        Assert.Equal(["MV-000001", "MV-000002"], outcomes.OrderBy(o => o.Key, StringComparer.Ordinal).Select(o => o.DocumentId));
        Assert.Equal(3, erp.OnHand("A", "WH1"));
        Assert.Equal(1, erp.Requests);
    }

    [Fact]
    public async Task rest_connector_does_not_book_a_repeated_key_twice()
    {
        await using var erp = await GenericErpEmulator.StartAsync();
        await using var connector = Rest(erp);

        var first = Assert.Single(await connector.PostAsync([Movement("ev-1", "A", 5)], CancellationToken.None));
        var again = Assert.Single(await connector.PostAsync([Movement("ev-1", "A", 5)], CancellationToken.None));

        Assert.Equal(ErpPostStatus.Posted, again.Status);
        Assert.Equal(first.DocumentId, again.DocumentId);
        Assert.Equal(1, erp.BookedCount);
        Assert.Equal(1, erp.DuplicateAttempts);
        Assert.Equal(5, erp.OnHand("A", "WH1"));
    }

    [Fact]
    public async Task rest_connector_keeps_below_the_erp_quota_at_its_configured_rate()
    {
        await using var erp = await GenericErpEmulator.StartAsync(new GenericErpEmulatorOptions { RequestsPerWindow = 5 });
        // Half the quota: the bucket's burst and refill stay within any one-second window of the ERP.
        await using var connector = Rest(erp, rate: 2.5);

        for (var i = 0; i < 6; i++)
        {
            Assert.Equal(ErpPostStatus.Posted, Assert.Single(await connector.PostAsync([Movement($"ev-{i}", "A", 1)], CancellationToken.None)).Status);
        }

        Assert.Equal(0, erp.ThrottledResponses);
        Assert.Equal(6, erp.BookedCount);
    }

    [Fact]
    public async Task rest_connector_waits_out_the_erps_throttle_answers_and_then_books()
    {
        await using var erp = await GenericErpEmulator.StartAsync();
        await using var connector = Rest(erp);
        erp.ThrottleNext(2);

        var outcome = Assert.Single(await connector.PostAsync([Movement("ev-1", "A", 4)], CancellationToken.None));

        Assert.Equal(ErpPostStatus.Posted, outcome.Status);
        Assert.Equal(2, erp.ThrottledResponses);
        Assert.Equal(2, Interlocked.Read(ref connector.Counters.Throttles));
        Assert.Equal(1, erp.BookedCount);
    }

    [Fact]
    public async Task rest_connector_reports_an_outage_as_transient_and_books_once_the_erp_is_back()
    {
        await using var erp = await GenericErpEmulator.StartAsync();
        await using var connector = Rest(erp);

        await erp.TakeDownAsync(refuseConnections: true);
        var refused = Assert.Single(await connector.PostAsync([Movement("ev-1", "A", 4)], CancellationToken.None));
        await erp.BringUpAsync();
        var booked = Assert.Single(await connector.PostAsync([Movement("ev-1", "A", 4)], CancellationToken.None));

        Assert.Equal(ErpPostStatus.Transient, refused.Status);
        Assert.Contains("failed", refused.Error, StringComparison.Ordinal);
        Assert.Equal(ErpPostStatus.Posted, booked.Status);
        Assert.Equal(1, erp.BookedCount);
    }

    [Fact]
    public async Task rest_connector_reports_503_and_a_too_slow_erp_as_transient()
    {
        await using var erp = await GenericErpEmulator.StartAsync();
        await using var connector = Rest(erp, timeoutSeconds: 0.3);

        await erp.TakeDownAsync();
        var unavailable = Assert.Single(await connector.PostAsync([Movement("ev-1", "A", 4)], CancellationToken.None));
        await erp.BringUpAsync();
        erp.SlowDown(TimeSpan.FromSeconds(2));
        var slow = Assert.Single(await connector.PostAsync([Movement("ev-2", "A", 4)], CancellationToken.None));

        Assert.Equal(ErpPostStatus.Transient, unavailable.Status);
        Assert.Contains("HTTP 503", unavailable.Error, StringComparison.Ordinal);
        Assert.Equal(ErpPostStatus.Transient, slow.Status);
        Assert.Contains("No answer from the ERP within 0.3 s", slow.Error, StringComparison.Ordinal);
        Assert.Equal(0, erp.BookedCount);
    }

    [Fact]
    public async Task rest_connector_reports_a_rejected_movement_as_permanent_with_the_erps_message()
    {
        await using var erp = await GenericErpEmulator.StartAsync();
        await using var connector = Rest(erp);
        erp.Faults.BreakSku("BLOCKED");

        var outcomes = await connector.PostAsync([Movement("ev-1", "BLOCKED", 4), Movement("ev-2", "A", 1)], CancellationToken.None);

        var rejected = outcomes.Single(o => o.Key == "ev-1:WH1");
        Assert.Equal(ErpPostStatus.Permanent, rejected.Status);
        Assert.Equal("Item 'BLOCKED' is blocked for posting (item status: blocked).", rejected.Error);
        Assert.Equal(ErpPostStatus.Posted, outcomes.Single(o => o.Key == "ev-2:WH1").Status);
    }

    [Fact]
    public async Task rest_connector_with_a_wrong_or_missing_secret_fails_permanently_without_revealing_it()
    {
        await using var erp = await GenericErpEmulator.StartAsync();
        await using var wrong = Rest(erp, secret: "not-the-key");
        await using var missing = Rest(erp, secret: null);

        var refused = Assert.Single(await wrong.PostAsync([Movement("ev-1", "A", 1)], CancellationToken.None));
        var unsent = Assert.Single(await missing.PostAsync([Movement("ev-1", "A", 1)], CancellationToken.None));

        Assert.Equal(ErpPostStatus.Permanent, refused.Status);
        Assert.Contains("HTTP 401", refused.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("not-the-key", refused.Error, StringComparison.Ordinal);
        Assert.Equal(ErpPostStatus.Permanent, unsent.Status);
        Assert.Contains("has no 'apiKey'", unsent.Error, StringComparison.Ordinal);
        Assert.Equal(1, erp.Requests);
    }

    // ------------------------------------------------------------------ Odoo

    [Fact]
    public async Task odoo_connector_books_movements_as_inventory_adjustments_named_by_their_keys()
    {
        await using var odoo = await OdooEmulator.StartAsync();
        var stock = odoo.AddLocation("WH/Stock");
        odoo.AddProduct("A");
        odoo.AddProduct("B");
        await using var connector = Odoo(odoo, new() { ["WH1"] = stock });

        var outcomes = await connector.PostAsync(
            [Movement("ev-1", "A", 5), Movement("ev-2", "A", -2, type: "sold"), Movement("ev_3", "B", 7)], CancellationToken.None);

        Assert.All(outcomes, o => Assert.True(o.Status == ErpPostStatus.Posted, o.Error));
        Assert.Equal(3, odoo.QuantityOf("A", stock));
        Assert.Equal(7, odoo.QuantityOf("B", stock));
        var moves = odoo.Moves;
        Assert.Equal(["ev-1:WH1", "ev-2:WH1", "ev_3:WH1"], moves.Select(m => m.Name).Order(StringComparer.Ordinal));
        foreach (var o in outcomes)
        {
            Assert.Equal(moves.Single(m => m.Name == o.Key).Id.ToString(System.Globalization.CultureInfo.InvariantCulture), o.DocumentId);
        }
        var sale = moves.Single(m => m.Name == "ev-2:WH1");
        Assert.Equal((stock, OdooEmulator.AdjustmentLocationId, 2.0), (sale.LocationId, sale.LocationDestId, sale.Quantity));
        Assert.Equal(0, odoo.DuplicateBookings);
    }

    [Fact]
    public async Task odoo_connector_finds_a_booked_key_instead_of_booking_it_twice()
    {
        await using var odoo = await OdooEmulator.StartAsync();
        var stock = odoo.AddLocation("WH/Stock");
        odoo.AddProduct("A");
        await using var connector = Odoo(odoo, new() { ["WH1"] = stock });

        var first = Assert.Single(await connector.PostAsync([Movement("ev-1", "A", 5)], CancellationToken.None));
        var again = Assert.Single(await connector.PostAsync([Movement("ev-1", "A", 5)], CancellationToken.None));

        Assert.Equal(ErpPostStatus.Posted, again.Status);
        Assert.Equal(first.DocumentId, again.DocumentId);
        Assert.Single(odoo.Moves);
        Assert.Equal(5, odoo.QuantityOf("A", stock));
        Assert.Equal(0, odoo.DuplicateBookings);
        Assert.Equal(1, odoo.KeyRepeats);
    }

    [Fact]
    public async Task odoo_connector_books_exactly_the_delta_on_top_of_stock_moved_in_odoo()
    {
        await using var odoo = await OdooEmulator.StartAsync();
        var stock = odoo.AddLocation("WH/Stock");
        odoo.AddProduct("A");
        odoo.MoveStockInOdoo("A", stock, 40);
        await using var connector = Odoo(odoo, new() { ["WH1"] = stock });

        Assert.Equal(ErpPostStatus.Posted, Assert.Single(await connector.PostAsync([Movement("ev-1", "A", -3, type: "sold")], CancellationToken.None)).Status);

        Assert.Equal(37, odoo.QuantityOf("A", stock));
        Assert.Equal(3, Assert.Single(odoo.Moves).Quantity);
    }

    [Fact]
    public async Task odoo_connector_sets_the_count_again_when_stock_moves_in_odoo_before_it_is_applied()
    {
        await using var odoo = await OdooEmulator.StartAsync();
        var stock = odoo.AddLocation("WH/Stock");
        odoo.AddProduct("A");
        odoo.MoveStockInOdoo("A", stock, 10);
        odoo.MoveStockBeforeNextApply("A", 5);
        await using var connector = Odoo(odoo, new() { ["WH1"] = stock });

        var outcome = Assert.Single(await connector.PostAsync([Movement("ev-1", "A", 3)], CancellationToken.None));

        Assert.Equal(ErpPostStatus.Posted, outcome.Status);
        Assert.Equal(18, odoo.QuantityOf("A", stock));
        Assert.Equal(3, Assert.Single(odoo.Moves).Quantity);
    }

    [Fact]
    public async Task odoo_connector_reports_unknown_products_and_unmapped_locations_as_permanent()
    {
        await using var odoo = await OdooEmulator.StartAsync();
        var stock = odoo.AddLocation("WH/Stock");
        odoo.AddProduct("A");
        odoo.AddProduct("TWICE");
        odoo.AddProduct("TWICE");
        await using var connector = Odoo(odoo, new() { ["WH1"] = stock });

        var outcomes = (await connector.PostAsync(
            [Movement("ev-1", "NOPE", 1), Movement("ev-2", "A", 1, locationId: "S9"), Movement("ev-3", "TWICE", 1), Movement("ev-4", "A", 1)],
            CancellationToken.None)).ToDictionary(o => o.Key);

        Assert.Equal(ErpPostStatus.Permanent, outcomes["ev-1:WH1"].Status);
        Assert.Contains("no active product with Internal Reference (default_code) 'NOPE'", outcomes["ev-1:WH1"].Error, StringComparison.Ordinal);
        Assert.Equal(ErpPostStatus.Permanent, outcomes["ev-2:S9"].Status);
        Assert.Contains("LocationMap:S9", outcomes["ev-2:S9"].Error, StringComparison.Ordinal);
        Assert.Equal(ErpPostStatus.Permanent, outcomes["ev-3:WH1"].Status);
        Assert.Contains("2 products with Internal Reference 'TWICE'", outcomes["ev-3:WH1"].Error, StringComparison.Ordinal);
        Assert.Equal(ErpPostStatus.Posted, outcomes["ev-4:WH1"].Status);
        Assert.Single(odoo.Moves);
    }

    [Fact]
    public async Task odoo_connector_reports_odoos_user_error_as_permanent_with_its_message()
    {
        await using var odoo = await OdooEmulator.StartAsync();
        var stock = odoo.AddLocation("WH/Stock");
        odoo.AddProduct("BLOCKED");
        odoo.Faults.BreakSku("BLOCKED");
        await using var connector = Odoo(odoo, new() { ["WH1"] = stock });

        var outcome = Assert.Single(await connector.PostAsync([Movement("ev-1", "BLOCKED", 2)], CancellationToken.None));

        Assert.Equal(ErpPostStatus.Permanent, outcome.Status);
        Assert.Equal("Odoo: odoo.exceptions.UserError: The product 'BLOCKED' is blocked: inventory adjustments are not allowed for it.", outcome.Error);
        Assert.Empty(odoo.Moves);
        Assert.False(odoo.HasPendingCount("BLOCKED", stock), "the counted quantity set for the failed adjustment was left on the quant");
    }

    [Fact]
    public async Task odoo_connector_reports_an_outage_as_transient_and_books_once_odoo_is_back()
    {
        await using var odoo = await OdooEmulator.StartAsync();
        var stock = odoo.AddLocation("WH/Stock");
        odoo.AddProduct("A");
        await using var connector = Odoo(odoo, new() { ["WH1"] = stock });

        await odoo.TakeDownAsync(refuseConnections: true);
        var refused = Assert.Single(await connector.PostAsync([Movement("ev-1", "A", 4)], CancellationToken.None));
        await odoo.BringUpAsync();
        var booked = Assert.Single(await connector.PostAsync([Movement("ev-1", "A", 4)], CancellationToken.None));

        Assert.Equal(ErpPostStatus.Transient, refused.Status);
        Assert.Equal(ErpPostStatus.Posted, booked.Status);
        Assert.Equal(4, odoo.QuantityOf("A", stock));
    }

    [Fact]
    public async Task odoo_connector_keeps_below_the_quota_at_its_configured_rate_and_waits_out_throttles()
    {
        await using var odoo = await OdooEmulator.StartAsync(new OdooEmulatorOptions { RequestsPerWindow = 10 });
        var stock = odoo.AddLocation("WH/Stock");
        odoo.AddProduct("A");
        await using var connector = Odoo(odoo, new() { ["WH1"] = stock }, rate: 5);

        // login, product lookup, key search, four calls to adjust, and the document lookup: 8 calls, spread at 5 a second.
        var booked = Assert.Single(await connector.PostAsync([Movement("ev-1", "A", 4)], CancellationToken.None));
        var throttledWithinRate = odoo.ThrottledResponses;
        odoo.ThrottleNext(1);
        var throttled = Assert.Single(await connector.PostAsync([Movement("ev-2", "A", 1)], CancellationToken.None));

        Assert.Equal(0, throttledWithinRate);
        Assert.Equal(ErpPostStatus.Posted, booked.Status);
        Assert.Equal(ErpPostStatus.Posted, throttled.Status);
        Assert.Equal(1, odoo.ThrottledResponses);
        Assert.Equal(1, Interlocked.Read(ref connector.Counters.Throttles));
        Assert.Equal(5, odoo.QuantityOf("A", stock));
    }

    [Fact]
    public async Task odoo_connector_with_a_refused_login_fails_permanently()
    {
        await using var odoo = await OdooEmulator.StartAsync();
        var stock = odoo.AddLocation("WH/Stock");
        odoo.AddProduct("A");
        await using var connector = Odoo(odoo, new() { ["WH1"] = stock }, password: "wrong");

        var outcome = Assert.Single(await connector.PostAsync([Movement("ev-1", "A", 4)], CancellationToken.None));

        Assert.Equal(ErpPostStatus.Permanent, outcome.Status);
        Assert.Contains("Odoo refused the login 'hub@example.com' on database 'acme'", outcome.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("wrong", outcome.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task odoo_emulator_validates_calls_like_odoo()
    {
        await using var odoo = await OdooEmulator.StartAsync();
        using var http = new HttpClient();

        async Task<string> Call(string body)
        {
            using var content = new StringContent(body, System.Text.Encoding.UTF8, "application/json");
            var response = await http.PostAsync(new Uri(odoo.Url, "jsonrpc"), content);
            Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
            return await response.Content.ReadAsStringAsync();
        }

        var denied = await Call($$$"""{"jsonrpc":"2.0","method":"call","id":1,"params":{"service":"object","method":"execute_kw","args":["acme",2,"bad","stock.quant","search_read",[[]]]}}""");
        var privateMethod = await Call($$$"""{"jsonrpc":"2.0","method":"call","id":2,"params":{"service":"object","method":"execute_kw","args":["acme",2,"{{{OdooPassword}}}","stock.move","_action_done",[[1]]]}}""");
        var badField = await Call($$$"""{"jsonrpc":"2.0","method":"call","id":3,"params":{"service":"object","method":"execute_kw","args":["acme",2,"{{{OdooPassword}}}","stock.move","search_read",[[["nope","=",1]]]]}}""");
        var notInventoryMode = await Call($$$"""{"jsonrpc":"2.0","method":"call","id":4,"params":{"service":"object","method":"execute_kw","args":["acme",2,"{{{OdooPassword}}}","stock.quant","create",[{"product_id":1,"location_id":1,"inventory_quantity":3}]]}}""");
        var login = await Call("""{"jsonrpc":"2.0","method":"call","id":5,"params":{"service":"common","method":"login","args":["acme","hub@example.com","bad"]}}""");

        Assert.Contains("\"name\":\"odoo.exceptions.AccessDenied\"", denied, StringComparison.Ordinal);
        Assert.Contains("Private methods (such as _action_done) cannot be called remotely.", privateMethod, StringComparison.Ordinal);
        Assert.Contains("Invalid field stock.move.nope", badField, StringComparison.Ordinal);
        Assert.Contains("Quant\\u0027s creation is restricted", notInventoryMode, StringComparison.Ordinal);
        Assert.Contains("\"result\":false", login, StringComparison.Ordinal);
    }

    // ------------------------------------------------------------------ settings

    [Theory]
    [InlineData("kind", "Kind must be 'rest' or 'odoo'")]
    [InlineData("url", "Url must be an absolute http or https URL")]
    [InlineData("userinfo", "Url must not carry user info")]
    [InlineData("batch", "BatchSizeMax must be from 1 to 1000")]
    [InlineData("rate", "RequestsPerSecondMax must be from 0.01 to 10000")]
    [InlineData("concurrency", "ConcurrencyMax must be from 1 to 64")]
    [InlineData("header", "AuthHeader must be an HTTP header name")]
    [InlineData("database", "Database is required for Odoo")]
    [InlineData("login", "Login is required for Odoo")]
    [InlineData("locations", "LocationMap is required for Odoo")]
    [InlineData("location-id", "LocationMap:WH1 must be a positive stock.location id")]
    public void bad_settings_are_rejected_naming_the_setting(string bad, string message)
    {
        var odoo = bad is "database" or "login" or "locations" or "location-id";
        var settings = new ErpSettings
        {
            Kind = bad == "kind" ? "sap" : odoo ? ErpSettings.KindOdoo : ErpSettings.KindRest,
            Url = bad switch { "url" => new Uri("ftp://erp.example.com/"), "userinfo" => new Uri("https://user:pw@erp.example.com/"), _ => new Uri("https://erp.example.com/api") },
            BatchSizeMax = bad == "batch" ? 0 : null,
            RequestsPerSecondMax = bad == "rate" ? 0 : 5,
            ConcurrencyMax = bad == "concurrency" ? 65 : 2,
            AuthHeader = bad == "header" ? "X Api Key" : "X-Api-Key",
            Database = bad == "database" ? null : "acme",
            Login = bad == "login" ? " " : "hub",
            LocationMap = bad switch { "locations" => [], "location-id" => new Dictionary<string, long> { ["WH1"] = 0 }, _ => new Dictionary<string, long> { ["WH1"] = 8 } },
        };

        Assert.StartsWith(message, settings.Validate(), StringComparison.Ordinal);
        var thrown = Assert.Throws<ArgumentException>(() => ErpConnectorFactory.Create(settings, new ErpContext(new HttpClient(), TimeProvider.System, _ => null)));
        Assert.Contains(message, thrown.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void settings_default_to_a_batch_size_per_kind()
    {
        Assert.Equal(100, new ErpSettings { Kind = ErpSettings.KindRest }.EffectiveBatchSizeMax);
        Assert.Equal(20, new ErpSettings { Kind = ErpSettings.KindOdoo }.EffectiveBatchSizeMax);
        Assert.Null(new ErpSettings { Kind = ErpSettings.KindRest, Url = new Uri("https://erp.example.com/api") }.Validate());
    }
}
