using System.Net;

namespace Truestock.Server.Tests;

/// <summary>PUT/GET /v1/locations, /v1/channels and PUT /v1/positions/{sku}/{loc}/safety-stock over HTTP.</summary>
public sealed class ApiMasterDataTests
{
    [Fact]
    public async Task put_location_answers_201_when_new_and_200_when_replaced()
    {
        await using var hub = await HubServer.Start();

        var created = await hub.Put("/v1/locations/WH1", new { name = "Main warehouse", type = "warehouse" });
        var body = await Api.AssertJson(created, HttpStatusCode.Created);
        Assert.Equal("WH1", body.Str("locationId"));
        Assert.Equal("Main warehouse", body.Str("name"));
        Assert.Equal("warehouse", body.Str("type"));

        var replaced = await hub.Put("/v1/locations/WH1", new { name = "Renamed", type = "dc" });
        body = await Api.AssertJson(replaced, HttpStatusCode.OK);
        Assert.Equal("Renamed", body.Str("name"));
        Assert.Equal("dc", body.Str("type"));

        var one = await hub.GetJson("/v1/locations/WH1");
        Assert.Equal("Renamed", one.Str("name"));
        Assert.Equal("dc", one.Str("type"));
    }

    [Theory]
    [InlineData("store")]
    [InlineData("warehouse")]
    [InlineData("dc")]
    [InlineData("3pl")]
    [InlineData("virtual")]
    public async Task put_location_accepts_every_location_type_of_the_model(string type)
    {
        await using var hub = await HubServer.Start();

        await Api.AssertJson(await hub.Put("/v1/locations/L-1", new { name = "L", type }), HttpStatusCode.Created);

        Assert.Equal(type, (await hub.GetJson("/v1/locations/L-1")).Str("type"));
    }

    [Fact]
    public async Task get_locations_lists_every_declared_location_ordered_by_id()
    {
        await using var hub = await HubServer.Start();
        await hub.Put("/v1/locations/WH1", new { name = "W", type = "warehouse" });
        await hub.Put("/v1/locations/S1", new { name = "S", type = "store" });
        await hub.Put("/v1/locations/3PL.a:b_c-d", new { name = "3", type = "3pl" });

        var list = await hub.GetJson("/v1/locations");

        Assert.Equal(["3PL.a:b_c-d", "S1", "WH1"], list.EnumerateArray().Select(l => l.Str("locationId")).ToArray());
    }

    [Fact]
    public async Task put_location_with_an_unknown_type_is_422_and_declares_nothing()
    {
        await using var hub = await HubServer.Start();

        var response = await hub.Put("/v1/locations/WH1", new { name = "W", type = "shop" });

        await Api.AssertFieldError(response, "type");
        await Api.AssertProblem(await hub.Client.GetAsync("/v1/locations/WH1"), HttpStatusCode.NotFound, "unknown-location");
        Assert.Empty((await hub.GetJson("/v1/locations")).EnumerateArray());
    }

    [Fact]
    public async Task put_location_without_name_or_type_is_422_naming_both_fields()
    {
        await using var hub = await HubServer.Start();

        var problem = await Api.AssertProblem(await hub.PutRaw("/v1/locations/WH1", "{}"), HttpStatusCode.UnprocessableEntity);

        Assert.Equal(["name", "type"], Api.ErrorKeys(problem).Order(StringComparer.Ordinal).ToArray());
    }

    [Theory]
    [InlineData("has%20space")]
    [InlineData("bang!")]
    [InlineData("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")] // 65 characters
    public async Task put_location_with_an_id_outside_the_id_alphabet_or_length_is_422(string id)
    {
        await using var hub = await HubServer.Start();

        await Api.AssertFieldError(await hub.Put($"/v1/locations/{id}", new { name = "W", type = "store" }), "locationId");

        Assert.Empty((await hub.GetJson("/v1/locations")).EnumerateArray());
    }

    [Fact]
    public async Task put_location_with_a_64_character_id_is_accepted()
    {
        await using var hub = await HubServer.Start();
        var id = new string('a', 64);

        await Api.AssertJson(await hub.Put($"/v1/locations/{id}", new { name = "W", type = "store" }), HttpStatusCode.Created);
    }

    [Theory]
    [InlineData("{\"name\": 5, \"type\": \"store\"}", "name")]
    [InlineData("{\"name\": \"W\", \"type\": [\"store\"]}", "type")]
    public async Task put_location_with_a_wrong_json_type_is_400(string json, string field)
    {
        await using var hub = await HubServer.Start();

        await Api.AssertFieldError(await hub.PutRaw("/v1/locations/WH1", json), field, HttpStatusCode.BadRequest);
    }

    [Theory]
    [InlineData("{\"name\": \"W\", ")]
    [InlineData("[1, 2]")]
    [InlineData("\"text\"")]
    [InlineData("")]
    public async Task put_location_with_malformed_json_is_400(string json)
    {
        await using var hub = await HubServer.Start();

        await Api.AssertProblem(await hub.PutRaw("/v1/locations/WH1", json), HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task put_channel_answers_201_with_default_publication_rules_then_200_when_replaced()
    {
        await using var hub = await HubServer.Start();
        await hub.Put("/v1/locations/WH1", new { name = "W", type = "warehouse" });
        await hub.Put("/v1/locations/S1", new { name = "S", type = "store" });

        var created = await Api.AssertJson(await hub.Put("/v1/channels/web", new { name = "Web shop", locations = new[] { "WH1", "S1" } }),
            HttpStatusCode.Created);
        Assert.Equal("web", created.Str("channelId"));
        Assert.Equal("Web shop", created.Str("name"));
        Assert.Equal(["WH1", "S1"], created.GetProperty("locations").EnumerateArray().Select(l => l.GetString()!).ToArray());
        Assert.Equal(100, created.Long("allocationPercent"));
        Assert.Equal(0, created.Long("bufferUnits"));
        Assert.False(created.TryGetProperty("maxQuantity", out var max) && max.ValueKind != System.Text.Json.JsonValueKind.Null);

        var replaced = await Api.AssertJson(await hub.Put("/v1/channels/web", new
        {
            name = "Web",
            locations = new[] { "S1" },
            allocationPercent = 40,
            bufferUnits = 2,
            maxQuantity = 50,
            connector = new { kind = "webhook", url = "http://127.0.0.1:9/stock" },
        }), HttpStatusCode.OK);
        Assert.Equal(40, replaced.Long("allocationPercent"));
        Assert.Equal(2, replaced.Long("bufferUnits"));
        Assert.Equal(50, replaced.Long("maxQuantity"));
        Assert.Equal("webhook", replaced.GetProperty("connector").Str("kind"));

        var one = await hub.GetJson("/v1/channels/web");
        Assert.Equal(["S1"], one.GetProperty("locations").EnumerateArray().Select(l => l.GetString()!).ToArray());
        Assert.Equal(40, one.Long("allocationPercent"));
    }

    [Fact]
    public async Task get_channels_lists_every_declared_channel()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup("web");
        await hub.Put("/v1/channels/amazon", new { name = "Amazon", locations = new[] { "WH1" }, allocationPercent = 50 });

        var list = await hub.GetJson("/v1/channels");

        Assert.Equal(["amazon", "web"], list.EnumerateArray().Select(c => c.Str("channelId")).ToArray());
        Assert.Equal(50, list.EnumerateArray().Single(c => c.Str("channelId") == "amazon").Long("allocationPercent"));
    }

    [Fact]
    public async Task put_channel_sourcing_from_an_undeclared_location_is_422_and_declares_nothing()
    {
        await using var hub = await HubServer.Start();
        await hub.Put("/v1/locations/WH1", new { name = "W", type = "warehouse" });

        var response = await hub.Put("/v1/channels/web", new { name = "Web", locations = new[] { "WH1", "NOPE" } });

        var problem = await Api.AssertProblem(response, HttpStatusCode.UnprocessableEntity, "unknown-location");
        Assert.Contains("locations", Api.ErrorKeys(problem));
        await Api.AssertProblem(await hub.Client.GetAsync("/v1/channels/web"), HttpStatusCode.NotFound, "unknown-channel");
        Assert.Empty((await hub.GetJson("/v1/channels")).EnumerateArray());
    }

    [Theory]
    [InlineData("{\"name\":\"Web\",\"locations\":[\"WH1\"],\"allocationPercent\":101}", "allocationPercent")]
    [InlineData("{\"name\":\"Web\",\"locations\":[\"WH1\"],\"allocationPercent\":-1}", "allocationPercent")]
    [InlineData("{\"name\":\"Web\",\"locations\":[\"WH1\"],\"bufferUnits\":-1}", "bufferUnits")]
    [InlineData("{\"name\":\"Web\",\"locations\":[\"WH1\"],\"bufferUnits\":1000000001}", "bufferUnits")]
    [InlineData("{\"name\":\"Web\",\"locations\":[\"WH1\"],\"maxQuantity\":-5}", "maxQuantity")]
    [InlineData("{\"name\":\"Web\",\"locations\":[]}", "locations")]
    [InlineData("{\"name\":\"Web\"}", "locations")]
    [InlineData("{\"locations\":[\"WH1\"]}", "name")]
    [InlineData("{\"name\":\"Web\",\"locations\":[\"WH1\",\"WH1\"]}", "locations[1]")]
    [InlineData("{\"name\":\"Web\",\"locations\":[\"bad id\"]}", "locations[0]")]
    public async Task put_channel_with_an_invalid_field_is_422_naming_it(string json, string field)
    {
        await using var hub = await HubServer.Start();
        await hub.Put("/v1/locations/WH1", new { name = "W", type = "warehouse" });

        await Api.AssertFieldError(await hub.PutRaw("/v1/channels/web", json), field);

        Assert.Empty((await hub.GetJson("/v1/channels")).EnumerateArray());
    }

    [Theory]
    [InlineData("{\"name\":\"Web\",\"locations\":\"WH1\"}", "locations")]
    [InlineData("{\"name\":\"Web\",\"locations\":[7]}", "locations[0]")]
    [InlineData("{\"name\":\"Web\",\"locations\":[\"WH1\"],\"allocationPercent\":\"50\"}", "allocationPercent")]
    public async Task put_channel_with_a_wrong_json_type_is_400(string json, string field)
    {
        await using var hub = await HubServer.Start();
        await hub.Put("/v1/locations/WH1", new { name = "W", type = "warehouse" });

        await Api.AssertFieldError(await hub.PutRaw("/v1/channels/web", json), field, HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task unknown_location_and_channel_are_404_problems()
    {
        await using var hub = await HubServer.Start();

        await Api.AssertProblem(await hub.Client.GetAsync("/v1/locations/NOPE"), HttpStatusCode.NotFound, "unknown-location");
        await Api.AssertProblem(await hub.Client.GetAsync("/v1/channels/nope"), HttpStatusCode.NotFound, "unknown-channel");
    }

    [Fact]
    public async Task safety_stock_is_withheld_from_available_and_from_every_channel()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Receive("SKU-1", "WH1", 10);

        var response = await hub.Put("/v1/positions/SKU-1/WH1/safety-stock", new { quantity = 3 });

        var view = await Api.AssertJson(response, HttpStatusCode.OK);
        Assert.Equal("WH1", view.Str("locationId"));
        Assert.Equal(3, view.Long("safetyStock"));
        Assert.Equal(7, view.Long("available"));
        await hub.AssertQuantities("SKU-1", "WH1", 10, 0, 0, 0, 0, 0, 3, 7);
        Assert.Equal(7, await hub.Ats("SKU-1", "web"));

        // Lowering it gives the units back.
        await Api.AssertJson(await hub.Put("/v1/positions/SKU-1/WH1/safety-stock", new { quantity = 0 }), HttpStatusCode.OK);
        Assert.Equal(10, await hub.Ats("SKU-1", "web"));
    }

    [Fact]
    public async Task safety_stock_may_use_all_free_stock_but_raising_it_above_free_stock_is_409_and_changes_nothing()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Receive("SKU-1", "WH1", 5);

        await Api.AssertJson(await hub.Put("/v1/positions/SKU-1/WH1/safety-stock", new { quantity = 5 }), HttpStatusCode.OK);
        await Api.AssertProblem(await hub.Put("/v1/positions/SKU-1/WH1/safety-stock", new { quantity = 6 }), HttpStatusCode.Conflict,
            "insufficient-stock");

        await hub.AssertQuantities("SKU-1", "WH1", 5, 0, 0, 0, 0, 0, 5, 0);
    }

    [Fact]
    public async Task safety_stock_on_an_untouched_position_above_zero_is_409()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();

        await Api.AssertProblem(await hub.Put("/v1/positions/NEW/WH1/safety-stock", new { quantity = 1 }), HttpStatusCode.Conflict,
            "insufficient-stock");
        await hub.AssertQuantities("NEW", "WH1", 0, 0, 0, 0, 0, 0, 0, 0);
    }

    [Fact]
    public async Task safety_stock_at_an_undeclared_location_is_422()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();

        await Api.AssertProblem(await hub.Put("/v1/positions/SKU-1/NOPE/safety-stock", new { quantity = 0 }),
            HttpStatusCode.UnprocessableEntity, "unknown-location");
    }

    [Theory]
    [InlineData("{\"quantity\":-1}", "quantity")]
    [InlineData("{\"quantity\":1000000001}", "quantity")]
    [InlineData("{\"quantity\":1.5}", "quantity")]
    [InlineData("{}", "quantity")]
    public async Task safety_stock_with_a_missing_or_out_of_range_quantity_is_422(string json, string field)
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();

        await Api.AssertFieldError(await hub.PutRaw("/v1/positions/SKU-1/WH1/safety-stock", json), field);
    }

    [Fact]
    public async Task safety_stock_with_a_string_quantity_is_400()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();

        await Api.AssertFieldError(await hub.PutRaw("/v1/positions/SKU-1/WH1/safety-stock", "{\"quantity\":\"3\"}"), "quantity",
            HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task master_data_safety_stock_and_positions_survive_a_restart()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup("web", new { allocationPercent = 50, bufferUnits = 1, maxQuantity = 100 });
        await hub.Receive("SKU-1", "WH1", 20);
        await hub.Receive("SKU-1", "S1", 4);
        await Api.AssertJson(await hub.Put("/v1/positions/SKU-1/WH1/safety-stock", new { quantity = 2 }), HttpStatusCode.OK);
        var before = await hub.GetJson("/v1/availability/SKU-1");

        await hub.Restart();

        Assert.Equal(["S1", "WH1"], (await hub.GetJson("/v1/locations")).EnumerateArray().Select(l => l.Str("locationId")).ToArray());
        var channel = await hub.GetJson("/v1/channels/web");
        Assert.Equal(["WH1", "S1"], channel.GetProperty("locations").EnumerateArray().Select(l => l.GetString()!).ToArray());
        Assert.Equal(50, channel.Long("allocationPercent"));
        Assert.Equal(1, channel.Long("bufferUnits"));
        Assert.Equal(100, channel.Long("maxQuantity"));
        var after = await hub.GetJson("/v1/availability/SKU-1");
        Assert.Equal(before.GetRawText(), after.GetRawText());
        await hub.AssertQuantities("SKU-1", "WH1", 20, 0, 0, 0, 0, 0, 2, 18);
        Assert.Equal(10, await hub.Ats("SKU-1", "web")); // floor((18 + 4) * 50 / 100) - 1
    }
}
