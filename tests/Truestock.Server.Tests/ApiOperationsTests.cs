using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using Microsoft.Data.Sqlite;

namespace Truestock.Server.Tests;

/// <summary>Health, metrics, OpenAPI, correlation ids, exceptions, API keys and recovery over HTTP.</summary>
public sealed class ApiOperationsTests
{
    private const string CorrelationHeader = "X-Correlation-Id";

    // ------------------------------------------------------------------ health, metrics, OpenAPI

    [Fact]
    public async Task health_live_and_ready_answer_200_once_the_hub_is_up()
    {
        await using var hub = await HubServer.Start();

        var live = await Api.AssertJson(await hub.Client.GetAsync("/health/live"), HttpStatusCode.OK);
        var ready = await Api.AssertJson(await hub.Client.GetAsync("/health/ready"), HttpStatusCode.OK);

        Assert.Equal("live", live.Str("status"));
        Assert.Equal("ready", ready.Str("status"));
    }

    [Fact]
    public async Task metrics_are_prometheus_text_counting_events_reservations_oversells_and_expiries()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        var received = HubServer.Event("received", "SKU-1", "WH1", 5);
        await hub.Events(received, received, HubServer.Event("sold", "SKU-2", "WH1", 3));
        await Api.AssertJson(await hub.Reserve(Api.Reservation("cart", "web", Api.Line("SKU-1", 2))), HttpStatusCode.Created);
        await hub.Advance(TimeSpan.FromMinutes(16));

        var response = await hub.Client.GetAsync("/metrics");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        var text = await response.Content.ReadAsStringAsync();
        var lines = text.Split('\n');
        Assert.Contains("# TYPE truestock_events_total counter", lines);
        Assert.Contains("truestock_events_total{status=\"applied\"} 2", lines);
        Assert.Contains("truestock_events_total{status=\"duplicate\"} 1", lines);
        Assert.Contains("truestock_reservation_requests_total{outcome=\"created\"} 1", lines);
        Assert.Contains("truestock_reservations_expired_total 1", lines);
        Assert.Contains("truestock_oversells_total 1", lines);
        Assert.Contains("truestock_oversold_units_total 3", lines);
        Assert.Contains(lines, l => l.StartsWith("truestock_journal_commit_seconds_count ", StringComparison.Ordinal));
        // Every sample line is "name{labels} value" with a truestock_ name.
        Assert.All(lines.Where(l => l.Length > 0 && !l.StartsWith('#')), l =>
        {
            Assert.StartsWith("truestock_", l, StringComparison.Ordinal);
            Assert.True(double.TryParse(l[(l.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture, out _), l);
        });
    }

    [Fact]
    public async Task the_openapi_document_describes_the_v1_endpoints()
    {
        await using var hub = await HubServer.Start();

        var doc = await hub.GetJson("/openapi/v1.json");

        Assert.StartsWith("3.", doc.Str("openapi"), StringComparison.Ordinal);
        var paths = doc.GetProperty("paths").EnumerateObject().Select(p => p.Name).ToHashSet();
        string[] expected =
        [
            "/v1/locations/{locationId}", "/v1/locations", "/v1/channels/{channelId}", "/v1/channels",
            "/v1/positions/{sku}/{locationId}/safety-stock", "/v1/events", "/v1/reservations",
            "/v1/reservations/{reservationId}/commit", "/v1/reservations/{reservationId}/release", "/v1/reservations/{reservationId}",
            "/v1/availability/{sku}", "/v1/channels/{channelId}/availability", "/v1/positions/{sku}/{locationId}/ledger",
            "/v1/exceptions", "/health/live", "/health/ready", "/metrics",
        ];
        Assert.All(expected, p => Assert.Contains(p, paths));
    }

    // ------------------------------------------------------------------ correlation ids

    [Fact]
    public async Task every_response_carries_a_new_correlation_id_when_none_is_sent()
    {
        await using var hub = await HubServer.Start();

        var responses = new[]
        {
            await hub.Client.GetAsync("/health/live"),
            await hub.Client.GetAsync("/v1/locations"),
            await hub.Client.GetAsync("/v1/channels/nope"),
            await hub.PostRaw("/v1/events", "{}"),
            await hub.PostRaw("/v1/events", "{"),
            await hub.Client.GetAsync("/metrics"),
        };

        var ids = responses.Select(r => Assert.Single(r.Headers.GetValues(CorrelationHeader))).ToArray();
        Assert.All(ids, id => Assert.False(string.IsNullOrWhiteSpace(id)));
        Assert.Equal(ids.Length, ids.Distinct().Count());
    }

    [Theory]
    [InlineData("GET", "/health/ready", null)]
    [InlineData("GET", "/v1/availability/SKU-1", null)]
    [InlineData("GET", "/v1/reservations/nope", null)]
    [InlineData("POST", "/v1/events", "{\"events\":[]}")]
    [InlineData("POST", "/v1/events", "not json")]
    [InlineData("PUT", "/v1/locations/WH1", "{\"name\":\"W\",\"type\":\"warehouse\"}")]
    public async Task every_response_echoes_the_callers_correlation_id(string method, string path, string? body)
    {
        await using var hub = await HubServer.Start();
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }
        request.Headers.Add(CorrelationHeader, "order-4711:attempt-2");

        var response = await hub.Client.SendAsync(request);

        Assert.Equal("order-4711:attempt-2", Assert.Single(response.Headers.GetValues(CorrelationHeader)));
    }

    [Fact]
    public async Task an_event_without_correlation_id_takes_the_requests_and_the_ledger_keeps_it()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/events")
        {
            Content = JsonContent.Create(new { events = new object[] { HubServer.Event("received", "SKU-1", "WH1", 1) } }),
        };
        request.Headers.Add(CorrelationHeader, "po-123");
        (await hub.Client.SendAsync(request)).EnsureSuccessStatusCode();

        var entry = Assert.Single((await hub.GetJson("/v1/positions/SKU-1/WH1/ledger")).GetProperty("entries").EnumerateArray());

        Assert.Equal("po-123", entry.Str("correlationId"));
    }

    [Fact]
    public async Task a_request_whose_body_framing_kestrel_rejects_is_a_400_problem_that_still_carries_the_correlation_id()
    {
        await using var hub = await HubServer.Start();
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(hub.BaseAddress.Host, hub.BaseAddress.Port);
        var stream = tcp.GetStream();
        // "ZZ" is not a hexadecimal chunk size: the server fails while reading the body.
        const string request = "POST /v1/events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" +
            "Transfer-Encoding: chunked\r\nX-Correlation-Id: raw-request-1\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request));

        var answer = await ReadToEnd(stream);

        var head = answer[..answer.IndexOf("\r\n\r\n", StringComparison.Ordinal)].Split("\r\n");
        var headers = string.Join(" | ", head);
        Assert.StartsWith("HTTP/1.1 400", head[0], StringComparison.Ordinal);
        Assert.True(head.Any(h => h.Equals("Content-Type: application/problem+json", StringComparison.OrdinalIgnoreCase)), headers);
        Assert.True(head.Any(h => h.Equals("X-Correlation-Id: raw-request-1", StringComparison.OrdinalIgnoreCase)),
            "the answer should echo X-Correlation-Id: raw-request-1 but its head is: " + headers);
    }

    private static async Task<string> ReadToEnd(NetworkStream stream)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var text = new StringBuilder();
        var buffer = new byte[8192];
        try
        {
            int read;
            while ((read = await stream.ReadAsync(buffer, timeout.Token)) > 0)
            {
                text.Append(Encoding.UTF8.GetString(buffer, 0, read));
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException)
        {
            // The server may reset or keep the connection after answering; what was read is the answer.
        }
        return text.ToString();
    }

    [Theory]
    [InlineData("POST", "/v1/events", "{\"events\":[{\"eventId\":\"e1\",\"type\":\"received\",\"sku\":\"@@\",\"locationId\":\"WH1\",\"quantity\":1,\"occurredAt\":\"2026-11-23T09:00:00Z\",\"source\":\"wms\"}]}")]
    [InlineData("POST", "/v1/reservations", "{\"reservationId\":\"r1\",\"channelId\":\"web\",\"lines\":[{\"sku\":\"@@\",\"quantity\":1}]}")]
    [InlineData("PUT", "/v1/locations/S9", "{\"name\":\"@@\",\"type\":\"store\"}")]
    public async Task a_string_that_is_not_valid_utf8_is_a_400_problem_not_a_server_error(string method, string path, string json)
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        // Replace the "@@" placeholder with the bytes FF FE, which are never valid UTF-8.
        var bytes = Encoding.UTF8.GetBytes(json);
        var at = Array.IndexOf(bytes, (byte)'@');
        bytes[at] = 0xFF;
        bytes[at + 1] = 0xFE;
        using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = new ByteArrayContent(bytes) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");

        var response = await hub.Client.SendAsync(request);

        await Api.AssertProblem(response, HttpStatusCode.BadRequest);
        Assert.Empty((await hub.GetJson("/v1/exceptions")).GetProperty("items").EnumerateArray());
        await Api.AssertProblem(await hub.Client.GetAsync("/v1/locations/S9"), HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task an_unknown_path_is_a_404_problem()
    {
        await using var hub = await HubServer.Start();

        await Api.AssertProblem(await hub.Client.GetAsync("/v1/no-such-resource"), HttpStatusCode.NotFound);
    }

    // ------------------------------------------------------------------ exceptions

    private static async Task RaiseOneOfEachException(HubServer hub)
    {
        await hub.Events(
            HubServer.Event("sold", "OVER", "WH1", 3, eventId: "oversell-1"),                 // negative-on-hand + oversell
            HubServer.Event("received", "CLAMP", "WH1", 5),
            HubServer.Event("damaged", "CLAMP", "WH1", 2),
            HubServer.Event("written_off", "CLAMP", "WH1", 3, eventId: "clamp-1"),            // damaged 2 − 3: clamp of 1
            HubServer.Event("received", "SEQ", "S1", 1, source: "pos").With("sourceSeq", 1),
            HubServer.Event("received", "SEQ", "S1", 1, eventId: "gap-1", source: "pos").With("sourceSeq", 4)); // 2 and 3 missing
    }

    [Fact]
    public async Task exceptions_list_oversells_negative_on_hand_clamps_and_sequence_gaps()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await RaiseOneOfEachException(hub);

        var page = await hub.GetJson("/v1/exceptions");

        var items = page.GetProperty("items").EnumerateArray().ToArray();
        Assert.False(page.TryGetProperty("next", out _));
        Assert.Equal(["clamp", "negative-on-hand", "oversell", "sequence-gap"], items.Select(i => i.Str("type")).Order(StringComparer.Ordinal).ToArray());
        var oversell = items.Single(i => i.Str("type") == "oversell");
        Assert.Equal("OVER", oversell.Str("sku"));
        Assert.Equal("WH1", oversell.Str("locationId"));
        Assert.Equal("oversell-1", oversell.Str("eventId"));
        Assert.Equal(3, oversell.Long("quantity"));
        Assert.False(string.IsNullOrWhiteSpace(oversell.Str("detail")));
        Assert.Equal(HubServer.Epoch, oversell.GetProperty("recordedAt").GetDateTimeOffset());
        var clamp = items.Single(i => i.Str("type") == "clamp");
        Assert.Equal("clamp-1", clamp.Str("eventId"));
        Assert.Equal(1, clamp.Long("quantity"));
        var gap = items.Single(i => i.Str("type") == "sequence-gap");
        Assert.Equal(2, gap.Long("quantity"));
        Assert.Equal("pos", gap.Str("source"));
        Assert.Equal(3, items.Single(i => i.Str("type") == "negative-on-hand").Long("quantity"));
        // Ids increase: the list is oldest first.
        var ids = items.Select(i => i.Long("id")).ToArray();
        Assert.Equal(ids.Order(), ids);
    }

    [Theory]
    [InlineData("oversell", "OVER")]
    [InlineData("negative-on-hand", "OVER")]
    [InlineData("clamp", "CLAMP")]
    [InlineData("sequence-gap", "SEQ")]
    public async Task exceptions_can_be_filtered_by_type(string type, string sku)
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await RaiseOneOfEachException(hub);

        var items = (await hub.GetJson("/v1/exceptions?type=" + type)).GetProperty("items").EnumerateArray().ToArray();

        var item = Assert.Single(items);
        Assert.Equal(type, item.Str("type"));
        Assert.Equal(sku, item.Str("sku"));
    }

    [Fact]
    public async Task exceptions_page_with_a_next_cursor_and_an_unknown_type_lists_nothing()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await RaiseOneOfEachException(hub);

        var first = await hub.GetJson("/v1/exceptions?limit=3");
        Assert.Equal(3, first.GetProperty("items").GetArrayLength());
        var next = first.Str("next");
        var second = await hub.GetJson("/v1/exceptions?limit=3&after=" + next);
        Assert.Equal(1, second.GetProperty("items").GetArrayLength());
        Assert.False(second.TryGetProperty("next", out _));
        var all = first.GetProperty("items").EnumerateArray().Concat(second.GetProperty("items").EnumerateArray()).Select(i => i.Long("id")).ToArray();
        Assert.Equal(4, all.Distinct().Count());

        Assert.Empty((await hub.GetJson("/v1/exceptions?type=no-such-type")).GetProperty("items").EnumerateArray());
    }

    [Fact]
    public async Task a_hub_without_exceptions_lists_none()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Receive("SKU-1", "WH1", 3);

        var page = await hub.GetJson("/v1/exceptions");

        Assert.Empty(page.GetProperty("items").EnumerateArray());
    }

    [Theory]
    [InlineData("limit=0", "limit")]
    [InlineData("limit=1001", "limit")]
    [InlineData("after=x", "after")]
    [InlineData("type=two%20words", "type")]
    public async Task an_exceptions_query_with_a_bad_parameter_is_422(string query, string field)
    {
        await using var hub = await HubServer.Start();

        await Api.AssertFieldError(await hub.Client.GetAsync("/v1/exceptions?" + query), field);
    }

    // ------------------------------------------------------------------ API keys

    private static readonly string[] KeyArgs =
    [
        "--Truestock:ApiKeys:0:Name=reader", "--Truestock:ApiKeys:0:Key=read-secret", "--Truestock:ApiKeys:0:Scopes:0=availability:read",
        "--Truestock:ApiKeys:1:Name=source", "--Truestock:ApiKeys:1:Key=write-secret", "--Truestock:ApiKeys:1:Scopes:0=events:write",
        "--Truestock:ApiKeys:2:Name=shop", "--Truestock:ApiKeys:2:Key=shop-secret", "--Truestock:ApiKeys:2:Scopes:0=reservations:write",
        "--Truestock:ApiKeys:2:Scopes:1=availability:read",
        "--Truestock:ApiKeys:3:Name=ops", "--Truestock:ApiKeys:3:Key=admin-secret", "--Truestock:ApiKeys:3:Scopes:0=admin",
    ];

    private static async Task<HttpResponseMessage> Send(HubServer hub, HttpMethod method, string path, object? body, string? key)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null)
        {
            request.Content = JsonContent.Create(body);
        }
        if (key is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }
        return await hub.Client.SendAsync(request);
    }

    private static object LocationBody => new { name = "W", type = "warehouse" };

    private static object OneEvent => new { events = new object[] { HubServer.Event("received", "SKU-1", "WH1", 1) } };

    [Fact]
    public async Task with_api_keys_a_request_without_a_key_or_with_an_unknown_key_is_401()
    {
        await using var hub = await HubServer.Start(KeyArgs);

        var none = await hub.Client.GetAsync("/v1/availability/SKU-1");
        await Api.AssertProblem(none, HttpStatusCode.Unauthorized);
        Assert.Contains(none.Headers.WwwAuthenticate, h => h.Scheme == "Bearer");
        await Api.AssertProblem(await Send(hub, HttpMethod.Get, "/v1/availability/SKU-1", null, "not-a-key"), HttpStatusCode.Unauthorized);
        await Api.AssertProblem(await Send(hub, HttpMethod.Post, "/v1/events", OneEvent, null), HttpStatusCode.Unauthorized);
        await Api.AssertProblem(await Send(hub, HttpMethod.Put, "/v1/locations/WH1", LocationBody, "read-secretX"), HttpStatusCode.Unauthorized);

        using var basic = new HttpRequestMessage(HttpMethod.Get, "/v1/locations");
        basic.Headers.Authorization = new AuthenticationHeaderValue("Basic", "cmVhZC1zZWNyZXQ=");
        await Api.AssertProblem(await hub.Client.SendAsync(basic), HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task with_api_keys_a_key_without_the_scope_is_403_and_changes_nothing()
    {
        await using var hub = await HubServer.Start(KeyArgs);
        Assert.Equal(HttpStatusCode.Created, (await Send(hub, HttpMethod.Put, "/v1/locations/WH1", LocationBody, "admin-secret")).StatusCode);

        await Api.AssertProblem(await Send(hub, HttpMethod.Post, "/v1/events", OneEvent, "read-secret"), HttpStatusCode.Forbidden);
        await Api.AssertProblem(await Send(hub, HttpMethod.Put, "/v1/locations/S1", LocationBody, "write-secret"), HttpStatusCode.Forbidden);
        await Api.AssertProblem(await Send(hub, HttpMethod.Get, "/v1/availability/SKU-1", null, "write-secret"), HttpStatusCode.Forbidden);
        await Api.AssertProblem(await Send(hub, HttpMethod.Post, "/v1/reservations",
            Api.Reservation("r-1", "web", Api.Line("SKU-1", 1)), "read-secret"), HttpStatusCode.Forbidden);
        await Api.AssertProblem(await Send(hub, HttpMethod.Get, "/v1/exceptions", null, "read-secret"), HttpStatusCode.Forbidden);

        var view = await Api.AssertJson(await Send(hub, HttpMethod.Get, "/v1/availability/SKU-1", null, "read-secret"), HttpStatusCode.OK);
        Assert.Equal(["WH1"], view.GetProperty("locations").EnumerateArray().Select(l => l.Str("locationId")).ToArray());
        Assert.Equal(0, view.GetProperty("locations")[0].Long("onHand"));
    }

    [Fact]
    public async Task with_api_keys_a_key_with_the_scope_is_served_and_admin_implies_every_scope()
    {
        await using var hub = await HubServer.Start(KeyArgs);

        await Api.AssertJson(await Send(hub, HttpMethod.Put, "/v1/locations/WH1", LocationBody, "admin-secret"), HttpStatusCode.Created);
        await Api.AssertJson(await Send(hub, HttpMethod.Put, "/v1/channels/web", new { name = "Web", locations = new[] { "WH1" } }, "admin-secret"),
            HttpStatusCode.Created);
        await Api.AssertJson(await Send(hub, HttpMethod.Post, "/v1/events", OneEvent, "write-secret"), HttpStatusCode.OK);
        await Api.AssertJson(await Send(hub, HttpMethod.Post, "/v1/reservations", Api.Reservation("r-1", "web", Api.Line("SKU-1", 1)), "shop-secret"),
            HttpStatusCode.Created);
        await Api.AssertJson(await Send(hub, HttpMethod.Post, "/v1/reservations/r-1/commit", null, "shop-secret"), HttpStatusCode.OK);
        await Api.AssertJson(await Send(hub, HttpMethod.Get, "/v1/reservations/r-1", null, "shop-secret"), HttpStatusCode.OK);

        var view = await Api.AssertJson(await Send(hub, HttpMethod.Get, "/v1/availability/SKU-1", null, "read-secret"), HttpStatusCode.OK);
        Assert.Equal(1, view.GetProperty("locations")[0].Long("allocated"));
        await Api.AssertJson(await Send(hub, HttpMethod.Get, "/v1/availability/SKU-1", null, "admin-secret"), HttpStatusCode.OK);
        await Api.AssertJson(await Send(hub, HttpMethod.Post, "/v1/events", OneEvent, "admin-secret"), HttpStatusCode.OK);
        await Api.AssertJson(await Send(hub, HttpMethod.Get, "/v1/exceptions", null, "admin-secret"), HttpStatusCode.OK);
    }

    [Fact]
    public async Task with_api_keys_the_bearer_scheme_name_is_case_insensitive()
    {
        // RFC 9110 §11.1: the authentication scheme is a case-insensitive token.
        await using var hub = await HubServer.Start(KeyArgs);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/locations");
        request.Headers.TryAddWithoutValidation("Authorization", "bearer read-secret");

        var response = await hub.Client.SendAsync(request);

        Assert.True(response.StatusCode == HttpStatusCode.OK,
            $"'Authorization: bearer <valid key>' answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
    }

    [Fact]
    public async Task with_api_keys_health_endpoints_stay_open()
    {
        await using var hub = await HubServer.Start(KeyArgs);

        Assert.Equal(HttpStatusCode.OK, (await hub.Client.GetAsync("/health/live")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await hub.Client.GetAsync("/health/ready")).StatusCode);
    }

    // ------------------------------------------------------------------ recovery

    [Fact]
    public async Task state_is_rebuilt_exactly_from_the_journal_alone_when_no_snapshot_exists()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup("web", new { allocationPercent = 90 });
        var t = HubServer.Epoch;
        await hub.Events(
            HubServer.Event("received", "SKU-1", "WH1", 20, t, "a"),
            HubServer.Event("sold", "SKU-1", "WH1", 2, t.AddHours(3), "b"),
            HubServer.Event("received", "SKU-1", "S2", 5, t, "early"), // rejected: S2 not declared yet
            HubServer.Event("return_received", "SKU-1", "S1", 4, t, "c"),
            HubServer.Event("sold", "SKU-1", "S1", 1, t, "seq-1").With("sourceSeq", 1));
        await hub.Events(HubServer.Event("counted", "SKU-1", "WH1", 15, t.AddHours(2), "d"));
        await hub.Put("/v1/locations/S2", new { name = "S2", type = "store" });
        await hub.Events(HubServer.Event("received", "SKU-1", "S2", 5, t, "early"));
        await hub.Events(HubServer.Event("inspected", "SKU-1", "S1", 3, t, "e").With("disposition", "restock"));
        await Api.AssertJson(await hub.Put("/v1/positions/SKU-1/WH1/safety-stock", new { quantity = 1 }), HttpStatusCode.OK);
        await Api.AssertJson(await hub.Reserve(Api.Reservation("order", "web", Api.Line("SKU-1", 4, "WH1"))), HttpStatusCode.Created);
        await Api.AssertJson(await hub.Commit("order"), HttpStatusCode.OK);
        await hub.Events(HubServer.Event("shipped", "SKU-1", "WH1", 1, t.AddHours(4), "f").With("reservationId", "order"));
        await Api.AssertJson(await hub.Reserve(Api.Reservation("cart-expiring", "web", Api.Line("SKU-1", 2, "WH1")).With("ttlSeconds", 60)),
            HttpStatusCode.Created);
        await hub.Advance(TimeSpan.FromSeconds(61));
        await Api.AssertJson(await hub.Reserve(Api.Reservation("cart-held", "web", Api.Line("SKU-1", 3, "S1"))), HttpStatusCode.Created);
        await Api.AssertJson(await hub.Reserve(Api.Reservation("cart-released", "web", Api.Line("SKU-1", 1, "WH1"))), HttpStatusCode.Created);
        await Api.AssertJson(await hub.Release("cart-released"), HttpStatusCode.OK);
        var before = (await hub.GetJson("/v1/availability/SKU-1")).GetRawText();
        var ledgerBefore = (await hub.GetJson("/v1/positions/SKU-1/WH1/ledger")).GetRawText();

        // Drop every snapshot so that the next start must replay the whole journal.
        await hub.Stop();
        hub.Storage.Execute("DELETE FROM snapshots");
        await hub.Restart();

        Assert.Equal(before, (await hub.GetJson("/v1/availability/SKU-1")).GetRawText());
        Assert.Equal(ledgerBefore, (await hub.GetJson("/v1/positions/SKU-1/WH1/ledger")).GetRawText());
        Assert.Equal("committed", await hub.ReservationStatus("order"));
        Assert.Equal("expired", await hub.ReservationStatus("cart-expiring"));
        Assert.Equal("held", await hub.ReservationStatus("cart-held"));
        Assert.Equal("released", await hub.ReservationStatus("cart-released"));
        Assert.Equal(["duplicate", "duplicate", "duplicate"], await hub.Events(
            HubServer.Event("received", "SKU-1", "WH1", 20, t, "a"),
            HubServer.Event("received", "SKU-1", "S2", 5, t, "early"),
            HubServer.Event("shipped", "SKU-1", "WH1", 1, t.AddHours(4), "f").With("reservationId", "order")));
        // The source sequence survives too: 3 after 1 reports a gap of one.
        await hub.Events(HubServer.Event("sold", "SKU-1", "S1", 1, t, "seq-3").With("sourceSeq", 3));
        var gap = Assert.Single((await hub.GetJson("/v1/exceptions?type=sequence-gap")).GetProperty("items").EnumerateArray());
        Assert.Equal(1, gap.Long("quantity"));
        // And the held cart still expires on time.
        await hub.Advance(TimeSpan.FromMinutes(15));
        Assert.Equal("expired", await hub.ReservationStatus("cart-held"));
    }

    [Fact]
    public async Task a_read_reflects_every_write_acknowledged_before_it_even_when_writes_run_concurrently()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();

        var writes = Enumerable.Range(0, 40).Select(i => hub.Events(HubServer.Event("received", "SKU-1", i % 2 == 0 ? "WH1" : "S1", 1)));
        var statuses = await Task.WhenAll(writes);

        Assert.All(statuses, s => Assert.Equal(["applied"], s));
        var view = await hub.GetJson("/v1/availability/SKU-1");
        Assert.Equal(40, view.GetProperty("locations").EnumerateArray().Sum(l => l.Long("onHand")));
        Assert.Equal(40, await hub.Ats("SKU-1", "web"));
    }

    [Fact]
    public async Task concurrent_reservations_never_hold_more_than_is_available()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Receive("SKU-1", "WH1", 10);

        var attempts = await Task.WhenAll(Enumerable.Range(0, 30).Select(i => hub.Reserve(Api.Reservation($"c-{i}", "web", Api.Line("SKU-1", 1)))));

        Assert.Equal(10, attempts.Count(r => r.StatusCode == HttpStatusCode.Created));
        Assert.Equal(20, attempts.Count(r => r.StatusCode == HttpStatusCode.Conflict));
        await hub.AssertQuantities("SKU-1", "WH1", 10, 0, 0, 0, 10, 0, 0, 0);
    }

    [Fact]
    public async Task bodiless_routing_errors_are_problems_that_name_the_cause()
    {
        await using var hub = await HubServer.Start();

        await Api.AssertProblem(await hub.Client.GetAsync("/v1/nothing-here"), HttpStatusCode.NotFound, "not-found");
        await Api.AssertProblem(await hub.Client.DeleteAsync("/v1/events"), HttpStatusCode.MethodNotAllowed, "method-not-allowed");
        var wrongType = await hub.Client.PostAsync("/v1/events", new StringContent("events", System.Text.Encoding.UTF8, "text/plain"));
        var problem = await Api.AssertProblem(wrongType, HttpStatusCode.UnsupportedMediaType, "unsupported-media-type");
        Assert.Contains("text/plain", problem.Str("detail"), StringComparison.Ordinal);
    }
}
