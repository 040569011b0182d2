using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Truestock.Server.Tests;

/// <summary>
/// POST /v1/sources/shopify/{sourceId}/webhooks: HMAC verification, the mapping of orders,
/// cancellations, fulfillments and refunds onto reservations and events, redelivery and
/// out-of-order delivery. Payloads follow the shape of Shopify's REST webhook samples.
/// </summary>
public sealed class ShopifyWebhookTests
{
    private const string Secret = "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";
    private const string Path = "/v1/sources/shopify/shop1/webhooks";
    private const long Warehouse = 655441491;
    private const long Store = 487838322;

    // Shopify's clock, a couple of minutes before the hub's (HubServer.Epoch is 09:00Z), in the shop's zone.
    private const string OrderedAt = "2026-11-23T03:58:00-05:00";
    private const string ShippedAt = "2026-11-23T03:59:30-05:00";

    private static async Task<HubServer> ShopHub(long stock = 10, string? apiKey = null, params string[] extraArgs)
    {
        var hub = await HubServer.Start([
            "--Truestock:ShopifySources:shop1:ChannelId=web",
            $"--Truestock:ShopifySources:shop1:Locations:{Warehouse}=WH1",
            $"--Truestock:ShopifySources:shop1:Locations:{Store}=S1",
            "--Truestock:ShopifySources:shop1:Credentials=shop1-app",
            "--Truestock:Credentials:shop1-app:webhookSecret=" + Secret,
            .. apiKey is null ? Array.Empty<string>() : ["--Truestock:ApiKeys:0:Name=ops", "--Truestock:ApiKeys:0:Key=" + apiKey, "--Truestock:ApiKeys:0:Scopes:0=admin"],
            .. extraArgs,
        ]);
        if (apiKey is not null)
        {
            hub.Client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        }
        await hub.Setup("web");
        if (stock > 0)
        {
            await hub.Receive("TSHIRT-M", "WH1", stock);
            await hub.Receive("MUG-BLUE", "WH1", stock);
        }
        return hub;
    }

    // ------------------------------------------------------------------ payloads (shape of Shopify's REST samples)

    private sealed record Item(long Id, string? Sku, long Quantity);

    private static string LineItems(IEnumerable<Item> items) => string.Join(",\n", items.Select(i => $$"""
        {
          "id": {{i.Id}},
          "admin_graphql_api_id": "gid://shopify/LineItem/{{i.Id}}",
          "fulfillable_quantity": {{i.Quantity}},
          "fulfillment_service": "manual",
          "fulfillment_status": null,
          "gift_card": false,
          "grams": 200,
          "name": "Item {{i.Sku}}",
          "price": "19.00",
          "price_set": { "shop_money": { "amount": "19.00", "currency_code": "USD" }, "presentment_money": { "amount": "19.00", "currency_code": "USD" } },
          "product_exists": true,
          "product_id": 632910392,
          "properties": [],
          "quantity": {{i.Quantity}},
          "requires_shipping": true,
          "sku": {{(i.Sku is null ? "null" : $"\"{i.Sku}\"")}},
          "taxable": true,
          "title": "Item",
          "total_discount": "0.00",
          "variant_id": 808950810,
          "variant_inventory_management": "shopify",
          "variant_title": null,
          "vendor": "Truestock Test",
          "tax_lines": [],
          "duties": [],
          "discount_allocations": []
        }
        """));

    private static string Order(long orderId, Item[] items, string? cancelledAt = null, long? locationId = null, string fulfillments = "[]") => $$"""
        {
          "id": {{orderId}},
          "admin_graphql_api_id": "gid://shopify/Order/{{orderId}}",
          "app_id": null,
          "buyer_accepts_marketing": false,
          "cancel_reason": {{(cancelledAt is null ? "null" : "\"customer\"")}},
          "cancelled_at": {{(cancelledAt is null ? "null" : $"\"{cancelledAt}\"")}},
          "confirmation_number": "ABC123XYZ",
          "confirmed": true,
          "contact_email": "jon@example.com",
          "created_at": "{{OrderedAt}}",
          "currency": "USD",
          "email": "jon@example.com",
          "financial_status": "paid",
          "fulfillment_status": null,
          "location_id": {{(locationId is null ? "null" : locationId.ToString())}},
          "name": "#1001",
          "order_number": 1001,
          "processed_at": "{{OrderedAt}}",
          "source_name": "web",
          "subtotal_price": "57.00",
          "tags": "",
          "test": false,
          "total_price": "62.00",
          "updated_at": "{{OrderedAt}}",
          "customer": { "id": 115310627314723954, "email": "jon@example.com", "first_name": "Jon", "last_name": "Doe" },
          "shipping_address": { "address1": "123 Shipping Street", "city": "Shippington", "country_code": "US", "zip": "40003" },
          "line_items": [
        {{LineItems(items)}}
          ],
          "fulfillments": {{fulfillments}},
          "refunds": [],
          "shipping_lines": [ { "id": 271878346596884015, "code": "Standard", "price": "5.00", "title": "Standard" } ]
        }
        """;

    private static string Fulfillment(long fulfillmentId, long orderId, Item[] items, long? locationId = Warehouse, string status = "success",
        string createdAt = ShippedAt) => $$"""
        {
          "id": {{fulfillmentId}},
          "admin_graphql_api_id": "gid://shopify/Fulfillment/{{fulfillmentId}}",
          "created_at": "{{createdAt}}",
          "location_id": {{(locationId is null ? "null" : locationId.ToString())}},
          "name": "#1001.1",
          "order_id": {{orderId}},
          "origin_address": {},
          "receipt": {},
          "service": "manual",
          "shipment_status": null,
          "status": "{{status}}",
          "tracking_company": "UPS",
          "tracking_number": "1Z2345",
          "tracking_numbers": [ "1Z2345" ],
          "tracking_url": "https://www.ups.com/WebTracking?loc=en_US&requester=ST&trackNums=1Z2345",
          "tracking_urls": [ "https://www.ups.com/WebTracking?loc=en_US&requester=ST&trackNums=1Z2345" ],
          "updated_at": "{{createdAt}}",
          "line_items": [
        {{LineItems(items)}}
          ]
        }
        """;

    private sealed record RefundItem(long Id, long LineItemId, string Sku, long Quantity, string RestockType, long? LocationId = Warehouse);

    private static string Refund(long refundId, long orderId, params RefundItem[] items) => $$"""
        {
          "id": {{refundId}},
          "admin_graphql_api_id": "gid://shopify/Refund/{{refundId}}",
          "created_at": "2026-11-23T03:59:50-05:00",
          "note": "wrong size",
          "order_id": {{orderId}},
          "processed_at": "2026-11-23T03:59:50-05:00",
          "restock": true,
          "user_id": null,
          "order_adjustments": [],
          "transactions": [ { "id": 1072844685, "order_id": {{orderId}}, "kind": "refund", "gateway": "bogus", "status": "success", "amount": "19.00", "currency": "USD" } ],
          "refund_line_items": [
        {{string.Join(",\n", items.Select(i => $$"""
            {
              "id": {{i.Id}},
              "line_item_id": {{i.LineItemId}},
              "location_id": {{(i.LocationId is null ? "null" : i.LocationId.ToString())}},
              "quantity": {{i.Quantity}},
              "restock_type": "{{i.RestockType}}",
              "subtotal": 19.0,
              "total_tax": 0.0,
              "line_item": {{LineItems([new Item(i.LineItemId, i.Sku, i.Quantity)])}}
            }
            """))}}
          ]
        }
        """;

    // ------------------------------------------------------------------ delivery

    private static string Sign(string body, string secret) =>
        Convert.ToBase64String(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes(body)));

    /// <summary>Delivers a webhook as Shopify does: raw JSON body, topic, signature and delivery headers.</summary>
    private static Task<HttpResponseMessage> Deliver(HubServer hub, string topic, string body, string? webhookId = null, string? signature = null,
        bool signed = true, string path = Path)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Add("X-Shopify-Topic", topic);
        request.Headers.Add("X-Shopify-Shop-Domain", "truestock-test.myshopify.com");
        request.Headers.Add("X-Shopify-API-Version", "2025-10");
        request.Headers.Add("X-Shopify-Webhook-Id", webhookId ?? Guid.NewGuid().ToString());
        request.Headers.Add("X-Shopify-Triggered-At", "2026-11-23T08:59:31.000000000Z");
        if (signed)
        {
            request.Headers.Add("X-Shopify-Hmac-Sha256", signature ?? Sign(body, Secret));
        }
        return hub.Client.SendAsync(request);
    }

    private static async Task<JsonElement> Accepted(HttpResponseMessage response, string outcome)
    {
        var body = await Api.AssertJson(response, HttpStatusCode.OK);
        Assert.True(body.Str("outcome") == outcome, $"expected outcome {outcome}: {body}");
        return body;
    }

    private static string[] Lines(JsonElement reservation) => reservation.GetProperty("lines").EnumerateArray()
        .Select(l => $"{l.Str("sku")}@{l.Str("locationId")}x{l.Long("quantity")}/{l.Long("shipped")}").ToArray();

    /// <summary>Counts deliveries by outcome from the Truestock.Shopify meter while it is alive.</summary>
    private sealed class DeliveryCounter : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly ConcurrentDictionary<string, long> _counts = new();

        public DeliveryCounter()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == "Truestock.Shopify" && instrument.Name == "truestock.shopify.webhooks")
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
            {
                foreach (var tag in tags)
                {
                    if (tag.Key == "outcome")
                    {
                        _counts.AddOrUpdate((string)tag.Value!, value, (_, n) => n + value);
                    }
                }
            });
            _listener.Start();
        }

        public long this[string outcome] => _counts.GetValueOrDefault(outcome);

        public void Dispose() => _listener.Dispose();
    }

    // ------------------------------------------------------------------ verification

    [Fact]
    public async Task an_order_with_a_valid_signature_is_reserved_and_committed_on_the_configured_channel()
    {
        await using var hub = await ShopHub();
        using var counter = new DeliveryCounter();

        var body = await Accepted(await Deliver(hub, "orders/create",
            Order(820982911946154508, [new Item(866550311766439020, "TSHIRT-M", 2), new Item(141249953214522974, "MUG-BLUE", 1)])), "applied");

        Assert.Equal("shopify-shop1-820982911946154508", body.Str("reservationId"));
        Assert.Equal("committed", body.Str("reservationStatus"));
        var reservation = await hub.GetJson("/v1/reservations/shopify-shop1-820982911946154508");
        Assert.Equal("committed", reservation.Str("status"));
        Assert.Equal("web", reservation.Str("channelId"));
        Assert.Equal(["TSHIRT-M@WH1x2/0", "MUG-BLUE@WH1x1/0"], Lines(reservation));
        await hub.AssertQuantities("TSHIRT-M", "WH1", 10, 0, 0, 2, 0, 0, 0, 8);
        await hub.AssertQuantities("MUG-BLUE", "WH1", 10, 0, 0, 1, 0, 0, 0, 9);
        Assert.Equal(1, counter["applied"]);
    }

    [Fact]
    public async Task a_bad_signature_is_401_is_counted_and_changes_nothing()
    {
        await using var hub = await ShopHub();
        using var counter = new DeliveryCounter();
        var order = Order(820982911946154508, [new Item(866550311766439020, "TSHIRT-M", 2)]);

        var wrongSecret = await Deliver(hub, "orders/create", order, signature: Sign(order, "not-the-secret"));
        var tampered = await Deliver(hub, "orders/create", order.Replace("\"quantity\": 2", "\"quantity\": 9", StringComparison.Ordinal),
            signature: Sign(order, Secret));
        var garbage = await Deliver(hub, "orders/create", order, signature: "not base64!");

        foreach (var response in new[] { wrongSecret, tampered, garbage })
        {
            await Api.AssertProblem(response, HttpStatusCode.Unauthorized, "invalid-signature");
            Assert.NotEmpty(response.Headers.WwwAuthenticate);
        }
        Assert.Equal(HttpStatusCode.NotFound, (await hub.Client.GetAsync("/v1/reservations/shopify-shop1-820982911946154508")).StatusCode);
        await hub.AssertQuantities("TSHIRT-M", "WH1", 10, 0, 0, 0, 0, 0, 0, 10);
        Assert.Equal(3, counter["unauthorized"]);
        var metrics = await hub.Client.GetStringAsync("/metrics");
        Assert.Contains("truestock_shopify_webhooks_total{outcome=\"unauthorized\"} 3", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task a_missing_signature_header_is_401_and_changes_nothing()
    {
        await using var hub = await ShopHub();

        var response = await Deliver(hub, "orders/create", Order(820982911946154508, [new Item(866550311766439020, "TSHIRT-M", 2)]), signed: false);

        var problem = await Api.AssertProblem(response, HttpStatusCode.Unauthorized, "invalid-signature");
        Assert.Contains("X-Shopify-Hmac-Sha256", problem.Str("detail"), StringComparison.Ordinal);
        await hub.AssertQuantities("TSHIRT-M", "WH1", 10, 0, 0, 0, 0, 0, 0, 10);
    }

    [Fact]
    public async Task a_signature_made_with_the_previous_secret_is_accepted_while_rotating()
    {
        await using var hub = await ShopHub(extraArgs: "--Truestock:Credentials:shop1-app:webhookSecretPrevious=old-secret");
        var order = Order(820982911946154508, [new Item(866550311766439020, "TSHIRT-M", 2)]);

        await Accepted(await Deliver(hub, "orders/create", order, signature: Sign(order, "old-secret")), "applied");

        await hub.AssertQuantities("TSHIRT-M", "WH1", 10, 0, 0, 2, 0, 0, 0, 8);
    }

    [Fact]
    public async Task the_webhook_needs_no_api_key_because_the_signature_authenticates_it()
    {
        await using var hub = await ShopHub(apiKey: "ops-key");
        hub.Client.DefaultRequestHeaders.Authorization = null;
        Assert.Equal(HttpStatusCode.Unauthorized, (await hub.Client.GetAsync("/v1/locations")).StatusCode);

        await Accepted(await Deliver(hub, "orders/create", Order(820982911946154508, [new Item(866550311766439020, "TSHIRT-M", 2)])), "applied");

        hub.Client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "ops-key");
        await hub.AssertQuantities("TSHIRT-M", "WH1", 10, 0, 0, 2, 0, 0, 0, 8);
    }

    [Fact]
    public async Task a_source_without_its_secret_is_503_and_applies_nothing()
    {
        await using var hub = await HubServer.Start("--Truestock:ShopifySources:shop1:ChannelId=web");
        await hub.Setup("web");

        var response = await Deliver(hub, "orders/create", Order(820982911946154508, [new Item(866550311766439020, "TSHIRT-M", 2)]));

        await Api.AssertProblem(response, HttpStatusCode.ServiceUnavailable, "shopify-source-misconfigured");
        Assert.Equal(HttpStatusCode.NotFound, (await hub.Client.GetAsync("/v1/reservations/shopify-shop1-820982911946154508")).StatusCode);
    }

    [Fact]
    public async Task an_unknown_source_is_404()
    {
        await using var hub = await ShopHub();

        var response = await Deliver(hub, "orders/create", Order(1, [new Item(2, "TSHIRT-M", 1)]), path: "/v1/sources/shopify/nowhere/webhooks");

        await Api.AssertProblem(response, HttpStatusCode.NotFound, "unknown-source");
    }

    // ------------------------------------------------------------------ limits and shape

    [Fact]
    public async Task a_malformed_payload_is_400_and_a_missing_field_is_422()
    {
        await using var hub = await ShopHub();

        await Api.AssertProblem(await Deliver(hub, "orders/create", "{\"id\": 820982911946154508, \"line_items\": ["), HttpStatusCode.BadRequest,
            "malformed-request");
        await Api.AssertProblem(await Deliver(hub, "orders/create", "[1, 2, 3]"), HttpStatusCode.BadRequest, "malformed-request");
        await Api.AssertFieldError(await Deliver(hub, "orders/create", "{\"id\": 820982911946154508, \"line_items\": \"none\"}"), "line_items",
            HttpStatusCode.BadRequest);
        await Api.AssertFieldError(await Deliver(hub, "orders/create", Order(820982911946154508, [new Item(866550311766439020, "TSHIRT-M", 2)])
            .Replace("\"id\": 820982911946154508,", "", StringComparison.Ordinal)), "id");
        await Api.AssertFieldError(await Deliver(hub, "fulfillments/create", "{\"id\": 255858046, \"line_items\": []}"), "order_id");

        await hub.AssertQuantities("TSHIRT-M", "WH1", 10, 0, 0, 0, 0, 0, 0, 10);
    }

    [Fact]
    public async Task a_body_over_one_mebibyte_is_413()
    {
        await using var hub = await ShopHub();
        var order = Order(820982911946154508, [new Item(866550311766439020, "TSHIRT-M", 2)]);
        var huge = order.Replace("\"tags\": \"\"", "\"tags\": \"" + new string('a', 1024 * 1024) + "\"", StringComparison.Ordinal);

        await Api.AssertProblem(await Deliver(hub, "orders/create", huge), HttpStatusCode.RequestEntityTooLarge, "body-too-large");

        await hub.AssertQuantities("TSHIRT-M", "WH1", 10, 0, 0, 0, 0, 0, 0, 10);
    }

    [Fact]
    public async Task a_topic_that_changes_no_stock_is_answered_200_and_ignored()
    {
        await using var hub = await ShopHub();

        var body = await Accepted(await Deliver(hub, "products/update", "{\"id\": 632910392, \"title\": \"T-Shirt\", \"variants\": []}"), "ignored");

        Assert.NotEmpty(body.GetProperty("notes").EnumerateArray());
    }

    // ------------------------------------------------------------------ idempotency and order

    [Fact]
    public async Task a_redelivered_webhook_is_applied_once_even_after_a_restart()
    {
        await using var hub = await ShopHub();
        var order = Order(820982911946154508, [new Item(866550311766439020, "TSHIRT-M", 2)]);
        var webhookId = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043";

        await Accepted(await Deliver(hub, "orders/create", order, webhookId), "applied");
        var again = await Accepted(await Deliver(hub, "orders/create", order, webhookId), "duplicate");
        Assert.Equal(0, again.GetProperty("events").GetArrayLength());
        await hub.Restart();
        // The delivery log is gone with the process; the reservation id derived from the order id still makes it a duplicate.
        await Accepted(await Deliver(hub, "orders/create", order, "another-delivery-of-the-same-order"), "duplicate");

        await hub.AssertQuantities("TSHIRT-M", "WH1", 10, 0, 0, 2, 0, 0, 0, 8);
        var ledger = await HubServer.WholeLedger(hub.Client, "TSHIRT-M", "WH1");
        Assert.Single(ledger, e => e.Str("type") == "reservation_held");
        Assert.Single(ledger, e => e.Str("type") == "reservation_committed");
    }

    [Fact]
    public async Task a_cancellation_returns_the_allocated_units()
    {
        await using var hub = await ShopHub();
        Item[] items = [new Item(866550311766439020, "TSHIRT-M", 2)];
        await Accepted(await Deliver(hub, "orders/create", Order(820982911946154508, items)), "applied");

        var body = await Accepted(await Deliver(hub, "orders/cancelled", Order(820982911946154508, items, cancelledAt: "2026-11-23T04:10:00-05:00")), "applied");

        Assert.Equal("released", body.Str("reservationStatus"));
        await hub.AssertQuantities("TSHIRT-M", "WH1", 10, 0, 0, 0, 0, 0, 0, 10);
    }

    [Fact]
    public async Task a_cancellation_before_its_order_leaves_nothing_held_when_the_order_arrives_late()
    {
        await using var hub = await ShopHub();
        Item[] items = [new Item(866550311766439020, "TSHIRT-M", 2)];

        var cancel = await Accepted(await Deliver(hub, "orders/cancelled", Order(820982911946154508, items, cancelledAt: "2026-11-23T04:10:00-05:00")), "applied");
        var late = await Accepted(await Deliver(hub, "orders/create", Order(820982911946154508, items)), "duplicate");

        Assert.Equal("released", cancel.Str("reservationStatus"));
        Assert.Equal("released", late.Str("reservationStatus"));
        Assert.Equal("released", await hub.ReservationStatus("shopify-shop1-820982911946154508"));
        await hub.AssertQuantities("TSHIRT-M", "WH1", 10, 0, 0, 0, 0, 0, 0, 10);
    }

    [Fact]
    public async Task a_fulfillment_ships_its_lines_against_the_reservation_once()
    {
        await using var hub = await ShopHub();
        Item[] items = [new Item(866550311766439020, "TSHIRT-M", 2), new Item(141249953214522974, "MUG-BLUE", 1)];
        await Accepted(await Deliver(hub, "orders/create", Order(820982911946154508, items)), "applied");
        var fulfillment = Fulfillment(255858046, 820982911946154508, [new Item(866550311766439020, "TSHIRT-M", 2)]);

        var shipped = await Accepted(await Deliver(hub, "fulfillments/create", fulfillment), "applied");
        // A redelivery under a new webhook id (or the same fulfillment inside orders/partially_fulfilled) ships nothing more.
        var again = await Accepted(await Deliver(hub, "fulfillments/create", fulfillment), "duplicate");

        var e = Assert.Single(shipped.GetProperty("events").EnumerateArray());
        Assert.Equal("shopify-shop1-f255858046-866550311766439020", e.Str("eventId"));
        Assert.Equal("applied", e.Str("status"));
        Assert.Equal("duplicate", again.GetProperty("events")[0].Str("status"));
        await hub.AssertQuantities("TSHIRT-M", "WH1", 8, 0, 0, 0, 0, 0, 0, 8);
        await hub.AssertQuantities("MUG-BLUE", "WH1", 10, 0, 0, 1, 0, 0, 0, 9);
        Assert.Equal(["TSHIRT-M@WH1x2/2", "MUG-BLUE@WH1x1/0"], Lines(await hub.GetJson("/v1/reservations/shopify-shop1-820982911946154508")));

        await Accepted(await Deliver(hub, "fulfillments/create", Fulfillment(255858047, 820982911946154508, [new Item(141249953214522974, "MUG-BLUE", 1)])), "applied");
        Assert.Equal("fulfilled", await hub.ReservationStatus("shopify-shop1-820982911946154508"));
        await hub.AssertQuantities("MUG-BLUE", "WH1", 9, 0, 0, 0, 0, 0, 0, 9);
    }

    [Fact]
    public async Task a_fulfillment_before_its_order_is_refused_with_409_until_the_order_arrives()
    {
        await using var hub = await ShopHub();
        using var counter = new DeliveryCounter();
        Item[] items = [new Item(866550311766439020, "TSHIRT-M", 2)];
        var fulfillment = Fulfillment(255858046, 820982911946154508, items);

        await Api.AssertProblem(await Deliver(hub, "fulfillments/create", fulfillment, "fulfillment-delivery-1"), HttpStatusCode.Conflict, "order-not-received");
        await hub.AssertQuantities("TSHIRT-M", "WH1", 10, 0, 0, 0, 0, 0, 0, 10);
        await Accepted(await Deliver(hub, "orders/create", Order(820982911946154508, items)), "applied");
        // Shopify delivers the refused webhook again, with the same webhook id.
        await Accepted(await Deliver(hub, "fulfillments/create", fulfillment, "fulfillment-delivery-1"), "applied");

        Assert.Equal("fulfilled", await hub.ReservationStatus("shopify-shop1-820982911946154508"));
        await hub.AssertQuantities("TSHIRT-M", "WH1", 8, 0, 0, 0, 0, 0, 0, 8);
        Assert.Equal(1, counter["deferred"]);
    }

    [Fact]
    public async Task a_fulfillment_whose_order_never_arrives_ships_after_the_wait_and_the_late_order_holds_nothing()
    {
        await using var hub = await ShopHub();
        Item[] items = [new Item(866550311766439020, "TSHIRT-M", 2)];
        await hub.Advance(TimeSpan.FromHours(2));

        var shipped = await Accepted(await Deliver(hub, "fulfillments/create", Fulfillment(255858046, 820982911946154508, items)), "applied");
        await Accepted(await Deliver(hub, "orders/create", Order(820982911946154508, items)), "duplicate");

        Assert.Equal("applied", shipped.GetProperty("events")[0].Str("status"));
        Assert.Equal("released", await hub.ReservationStatus("shopify-shop1-820982911946154508"));
        await hub.AssertQuantities("TSHIRT-M", "WH1", 8, 0, 0, 0, 0, 0, 0, 8);
    }

    [Fact]
    public async Task an_order_that_arrives_fulfilled_is_reserved_and_shipped_in_one_delivery()
    {
        await using var hub = await ShopHub();
        Item[] items = [new Item(866550311766439020, "TSHIRT-M", 1)];
        var fulfillments = "[" + Fulfillment(255858046, 820982911946154508, items, locationId: Store) + "]";
        await hub.Receive("TSHIRT-M", "S1", 3);

        // A POS sale: the order names the store and arrives already fulfilled there.
        await Accepted(await Deliver(hub, "orders/create", Order(820982911946154508, items, locationId: Store, fulfillments: fulfillments)), "applied");
        await Accepted(await Deliver(hub, "fulfillments/create", Fulfillment(255858046, 820982911946154508, items, locationId: Store)), "duplicate");

        Assert.Equal("fulfilled", await hub.ReservationStatus("shopify-shop1-820982911946154508"));
        await hub.AssertQuantities("TSHIRT-M", "S1", 2, 0, 0, 0, 0, 0, 0, 2);
        await hub.AssertQuantities("TSHIRT-M", "WH1", 10, 0, 0, 0, 0, 0, 0, 10);
    }

    [Fact]
    public async Task a_fulfillment_from_another_location_than_allocated_consumes_the_allocation_and_leaves_from_where_it_shipped()
    {
        await using var hub = await ShopHub();
        await hub.Receive("TSHIRT-M", "S1", 3);
        Item[] items = [new Item(866550311766439020, "TSHIRT-M", 2)];
        // A web order names no location, so the hub allocates at the first sourcing location (WH1).
        await Accepted(await Deliver(hub, "orders/create", Order(820982911946154508, items)), "applied");

        var body = await Accepted(await Deliver(hub, "fulfillments/create", Fulfillment(255858046, 820982911946154508, items, locationId: Store)), "applied");

        Assert.Equal(3, body.GetProperty("events").GetArrayLength());
        Assert.Equal("fulfilled", await hub.ReservationStatus("shopify-shop1-820982911946154508"));
        await hub.AssertQuantities("TSHIRT-M", "WH1", 10, 0, 0, 0, 0, 0, 0, 10);
        await hub.AssertQuantities("TSHIRT-M", "S1", 1, 0, 0, 0, 0, 0, 0, 1);
    }

    [Fact]
    public async Task a_pending_fulfillment_ships_nothing()
    {
        await using var hub = await ShopHub();
        Item[] items = [new Item(866550311766439020, "TSHIRT-M", 2)];
        await Accepted(await Deliver(hub, "orders/create", Order(820982911946154508, items)), "applied");

        await Accepted(await Deliver(hub, "fulfillments/create", Fulfillment(255858046, 820982911946154508, items, status: "pending")), "ignored");

        await hub.AssertQuantities("TSHIRT-M", "WH1", 10, 0, 0, 2, 0, 0, 0, 8);
    }

    // ------------------------------------------------------------------ refunds

    [Fact]
    public async Task a_refund_with_restock_type_return_puts_the_units_into_inspection_not_on_sale()
    {
        await using var hub = await ShopHub();
        Item[] items = [new Item(866550311766439020, "TSHIRT-M", 2)];
        await Accepted(await Deliver(hub, "orders/create", Order(820982911946154508, items)), "applied");
        await Accepted(await Deliver(hub, "fulfillments/create", Fulfillment(255858046, 820982911946154508, items)), "applied");
        var refund = Refund(929361464, 820982911946154508, new RefundItem(1058498311, 866550311766439020, "TSHIRT-M", 1, "return"));

        var body = await Accepted(await Deliver(hub, "refunds/create", refund), "applied");
        await Accepted(await Deliver(hub, "refunds/create", refund), "duplicate");

        Assert.Equal("shopify-shop1-r929361464-1058498311", body.GetProperty("events")[0].Str("eventId"));
        await hub.AssertQuantities("TSHIRT-M", "WH1", 9, 0, 1, 0, 0, 0, 0, 8);
    }

    [Fact]
    public async Task a_refund_that_cancels_every_unshipped_unit_releases_the_reservation()
    {
        await using var hub = await ShopHub();
        Item[] items = [new Item(866550311766439020, "TSHIRT-M", 2), new Item(141249953214522974, "MUG-BLUE", 1)];
        await Accepted(await Deliver(hub, "orders/create", Order(820982911946154508, items)), "applied");
        await Accepted(await Deliver(hub, "fulfillments/create", Fulfillment(255858046, 820982911946154508, [items[0]])), "applied");

        // The mug is out of stock at the merchant: it is cancelled, and one shirt is refunded as a goodwill gesture (no restock).
        var body = await Accepted(await Deliver(hub, "refunds/create", Refund(929361464, 820982911946154508,
            new RefundItem(1058498311, 141249953214522974, "MUG-BLUE", 1, "cancel"),
            new RefundItem(1058498312, 866550311766439020, "TSHIRT-M", 1, "no_restock"))), "applied");

        Assert.Equal("released", body.Str("reservationStatus"));
        await hub.AssertQuantities("MUG-BLUE", "WH1", 10, 0, 0, 0, 0, 0, 0, 10);
        await hub.AssertQuantities("TSHIRT-M", "WH1", 8, 0, 0, 0, 0, 0, 0, 8);
    }

    [Fact]
    public async Task a_mapped_location_the_hub_does_not_know_is_503_and_applies_once_it_is_declared()
    {
        await using var hub = await ShopHub(extraArgs: "--Truestock:ShopifySources:shop1:Locations:999=RETURNS");
        var refund = Refund(929361464, 820982911946154508, new RefundItem(1058498311, 866550311766439020, "TSHIRT-M", 1, "return", LocationId: 999));

        await Api.AssertProblem(await Deliver(hub, "refunds/create", refund, "refund-delivery-1"), HttpStatusCode.ServiceUnavailable,
            "shopify-source-misconfigured");
        (await hub.Put("/v1/locations/RETURNS", new { name = "Returns desk", type = "warehouse" })).EnsureSuccessStatusCode();
        await Accepted(await Deliver(hub, "refunds/create", refund, "refund-delivery-1"), "applied");

        await hub.AssertQuantities("TSHIRT-M", "RETURNS", 1, 0, 1, 0, 0, 0, 0, 0);
    }

    [Fact]
    public async Task a_refund_that_cancels_part_of_the_open_units_is_answered_200_and_recorded()
    {
        await using var hub = await ShopHub();
        Item[] items = [new Item(866550311766439020, "TSHIRT-M", 2), new Item(141249953214522974, "MUG-BLUE", 1)];
        await Accepted(await Deliver(hub, "orders/create", Order(820982911946154508, items)), "applied");

        var body = await Accepted(await Deliver(hub, "refunds/create", Refund(929361464, 820982911946154508,
            new RefundItem(1058498311, 141249953214522974, "MUG-BLUE", 1, "cancel"))), "rejected");

        Assert.EndsWith("partial-cancel-not-applied", body.GetProperty("rejections")[0].Str("type"), StringComparison.Ordinal);
        await hub.AssertQuantities("MUG-BLUE", "WH1", 10, 0, 0, 1, 0, 0, 0, 9);
    }

    // ------------------------------------------------------------------ business rejections

    [Fact]
    public async Task insufficient_stock_is_answered_200_and_recorded_so_that_shopify_does_not_retry()
    {
        await using var hub = await ShopHub(stock: 1);
        using var counter = new DeliveryCounter();
        Item[] items = [new Item(866550311766439020, "TSHIRT-M", 2), new Item(141249953214522974, "UNKNOWN-SKU", 1)];

        var body = await Accepted(await Deliver(hub, "orders/create", Order(820982911946154508, items)), "rejected");

        var rejection = Assert.Single(body.GetProperty("rejections").EnumerateArray());
        Assert.EndsWith("insufficient-stock", rejection.Str("type"), StringComparison.Ordinal);
        Assert.Contains("UNKNOWN-SKU", rejection.Str("detail"), StringComparison.Ordinal);
        await hub.AssertQuantities("TSHIRT-M", "WH1", 1, 0, 0, 0, 0, 0, 0, 1);
        Assert.Equal(1, counter["rejected"]);

        // The merchant ships anyway: the units physically left, so onHand drops and the oversell is raised.
        await Accepted(await Deliver(hub, "fulfillments/create", Fulfillment(255858046, 820982911946154508, [items[0]])), "applied");
        await hub.AssertQuantities("TSHIRT-M", "WH1", -1, 0, 0, 0, 0, 0, 0, -1);
        var exceptions = await hub.GetJson("/v1/exceptions?type=oversell");
        Assert.Contains(exceptions.GetProperty("items").EnumerateArray(), x => x.Str("eventId") == "shopify-shop1-f255858046-866550311766439020");
    }
}
