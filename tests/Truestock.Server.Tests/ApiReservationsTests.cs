using System.Net;
using System.Text.Json;

namespace Truestock.Server.Tests;

/// <summary>POST/GET /v1/reservations, commit, release and expiry over HTTP with the injected clock.</summary>
public sealed class ApiReservationsTests
{
    private static async Task<HubServer> StockedHub(long warehouse = 10, long store = 0, object? channelExtras = null, string[]? hubArgs = null)
    {
        var hub = await HubServer.Start(hubArgs ?? []);
        await hub.Setup("web", channelExtras);
        if (warehouse > 0)
        {
            await hub.Receive("SKU-1", "WH1", warehouse);
        }
        if (store > 0)
        {
            await hub.Receive("SKU-1", "S1", store);
        }
        return hub;
    }

    private static string[] Lines(JsonElement reservation) =>
        reservation.GetProperty("lines").EnumerateArray().Select(l => $"{l.Str("sku")}@{l.Str("locationId")}x{l.Long("quantity")}").ToArray();

    // ------------------------------------------------------------------ hold

    [Fact]
    public async Task a_reservation_is_held_with_201_and_moves_units_from_available_to_reserved()
    {
        await using var hub = await StockedHub();

        var response = await hub.Reserve(Api.Reservation("cart-1", "web", Api.Line("SKU-1", 3)).With("correlationId", "checkout-77"));

        var body = await Api.AssertJson(response, HttpStatusCode.Created);
        Assert.EndsWith("/v1/reservations/cart-1", response.Headers.Location?.ToString(), StringComparison.Ordinal);
        Assert.Equal("cart-1", body.Str("reservationId"));
        Assert.Equal("held", body.Str("status"));
        Assert.Equal("web", body.Str("channelId"));
        Assert.Equal("checkout-77", body.Str("correlationId"));
        Assert.Equal(HubServer.Epoch.AddSeconds(900), body.GetProperty("expiresAt").GetDateTimeOffset());
        Assert.Equal(["SKU-1@WH1x3"], Lines(body));
        await hub.AssertQuantities("SKU-1", "WH1", 10, 0, 0, 0, 3, 0, 0, 7);
        Assert.Equal(7, await hub.Ats("SKU-1", "web"));

        var read = await hub.GetJson("/v1/reservations/cart-1");
        Assert.Equal("held", read.Str("status"));
        Assert.Equal(["SKU-1@WH1x3"], Lines(read));
    }

    [Fact]
    public async Task a_line_without_location_takes_the_first_sourcing_location_with_enough_available()
    {
        await using var hub = await StockedHub(warehouse: 2, store: 5);

        var big = await Api.AssertJson(await hub.Reserve(Api.Reservation("r-big", "web", Api.Line("SKU-1", 3))), HttpStatusCode.Created);
        var small = await Api.AssertJson(await hub.Reserve(Api.Reservation("r-small", "web", Api.Line("SKU-1", 2))), HttpStatusCode.Created);

        Assert.Equal(["SKU-1@S1x3"], Lines(big));
        Assert.Equal(["SKU-1@WH1x2"], Lines(small));
        Assert.Equal(0, await hub.Available("SKU-1", "WH1"));
        Assert.Equal(2, await hub.Available("SKU-1", "S1"));
    }

    [Fact]
    public async Task a_line_with_a_location_takes_its_units_there_only()
    {
        await using var hub = await StockedHub(warehouse: 2, store: 5);

        await Api.AssertJson(await hub.Reserve(Api.Reservation("r-1", "web", Api.Line("SKU-1", 2, "S1"))), HttpStatusCode.Created);
        var problem = await Api.AssertProblem(await hub.Reserve(Api.Reservation("r-2", "web", Api.Line("SKU-1", 3, "WH1"))),
            HttpStatusCode.Conflict, "insufficient-stock");

        var shortage = Assert.Single(problem.GetProperty("shortages").EnumerateArray());
        Assert.Equal(3, shortage.Long("requested"));
        Assert.Equal(2, shortage.Long("available"));
        await hub.AssertQuantities("SKU-1", "S1", 5, 0, 0, 0, 2, 0, 0, 3);
        await hub.AssertQuantities("SKU-1", "WH1", 2, 0, 0, 0, 0, 0, 0, 2);
    }

    [Fact]
    public async Task ttl_seconds_sets_the_expiry()
    {
        await using var hub = await StockedHub();

        var body = await Api.AssertJson(await hub.Reserve(Api.Reservation("r-ttl", "web", Api.Line("SKU-1", 1)).With("ttlSeconds", 60)),
            HttpStatusCode.Created);

        Assert.Equal(HubServer.Epoch.AddSeconds(60), body.GetProperty("expiresAt").GetDateTimeOffset());
        Assert.Equal(60, body.Long("ttlSeconds"));
    }

    [Fact]
    public async Task the_longest_ttl_of_seven_days_is_accepted()
    {
        await using var hub = await StockedHub();

        var body = await Api.AssertJson(await hub.Reserve(Api.Reservation("r-week", "web", Api.Line("SKU-1", 1)).With("ttlSeconds", 604800)),
            HttpStatusCode.Created);

        Assert.Equal(HubServer.Epoch.AddDays(7), body.GetProperty("expiresAt").GetDateTimeOffset());
    }

    // ------------------------------------------------------------------ insufficient stock

    [Fact]
    public async Task insufficient_stock_is_409_with_shortages_and_nothing_is_held()
    {
        await using var hub = await StockedHub();
        await hub.Receive("SKU-2", "WH1", 1);

        var response = await hub.Reserve(Api.Reservation("r-short", "web", Api.Line("SKU-1", 3), Api.Line("SKU-2", 2)));

        var problem = await Api.AssertProblem(response, HttpStatusCode.Conflict, "insufficient-stock");
        var shortage = Assert.Single(problem.GetProperty("shortages").EnumerateArray());
        Assert.Equal("SKU-2", shortage.Str("sku"));
        Assert.Equal(2, shortage.Long("requested"));
        Assert.Equal(1, shortage.Long("available"));
        // All or nothing: the line that fitted is not held either.
        await hub.AssertQuantities("SKU-1", "WH1", 10, 0, 0, 0, 0, 0, 0, 10);
        await hub.AssertQuantities("SKU-2", "WH1", 1, 0, 0, 0, 0, 0, 0, 1);
        await Api.AssertProblem(await hub.Client.GetAsync("/v1/reservations/r-short"), HttpStatusCode.NotFound, "unknown-reservation");
    }

    [Fact]
    public async Task a_failed_reservation_id_can_be_used_again_once_stock_arrives()
    {
        await using var hub = await StockedHub(warehouse: 1);

        await Api.AssertProblem(await hub.Reserve(Api.Reservation("r-retry", "web", Api.Line("SKU-1", 3))), HttpStatusCode.Conflict,
            "insufficient-stock");
        await hub.Receive("SKU-1", "WH1", 5);

        await Api.AssertJson(await hub.Reserve(Api.Reservation("r-retry", "web", Api.Line("SKU-1", 3))), HttpStatusCode.Created);
    }

    [Fact]
    public async Task later_lines_of_the_same_sku_see_what_earlier_lines_took()
    {
        await using var hub = await StockedHub(warehouse: 5);

        var problem = await Api.AssertProblem(await hub.Reserve(Api.Reservation("r-twice", "web", Api.Line("SKU-1", 3), Api.Line("SKU-1", 3))),
            HttpStatusCode.Conflict, "insufficient-stock");

        var shortage = Assert.Single(problem.GetProperty("shortages").EnumerateArray());
        Assert.Equal(3, shortage.Long("requested"));
        Assert.Equal(2, shortage.Long("available"));
        Assert.Equal(0, (await hub.Position("SKU-1", "WH1")).Long("reserved"));
    }

    [Fact]
    public async Task a_reservation_cannot_take_more_than_the_channel_ats()
    {
        await using var hub = await StockedHub(warehouse: 10, channelExtras: new { allocationPercent = 50, bufferUnits = 1 });
        Assert.Equal(4, await hub.Ats("SKU-1", "web"));

        var problem = await Api.AssertProblem(await hub.Reserve(Api.Reservation("r-ats", "web", Api.Line("SKU-1", 5))),
            HttpStatusCode.Conflict, "insufficient-stock");
        Assert.Equal(4, Assert.Single(problem.GetProperty("shortages").EnumerateArray()).Long("available"));

        await Api.AssertJson(await hub.Reserve(Api.Reservation("r-ats", "web", Api.Line("SKU-1", 4))), HttpStatusCode.Created);
        Assert.Equal(6, await hub.Available("SKU-1", "WH1"));
    }

    [Fact]
    public async Task nothing_can_be_reserved_of_an_unknown_sku()
    {
        await using var hub = await StockedHub();

        var problem = await Api.AssertProblem(await hub.Reserve(Api.Reservation("r-none", "web", Api.Line("NEVER-SEEN", 1))),
            HttpStatusCode.Conflict, "insufficient-stock");

        var shortage = Assert.Single(problem.GetProperty("shortages").EnumerateArray());
        Assert.Equal("NEVER-SEEN", shortage.Str("sku"));
        Assert.Equal(0, shortage.Long("available"));
    }

    // ------------------------------------------------------------------ idempotency

    [Fact]
    public async Task the_same_reservation_request_again_answers_200_with_the_current_state_and_holds_nothing_more()
    {
        await using var hub = await StockedHub();
        var request = Api.Reservation("r-idem", "web", Api.Line("SKU-1", 3));
        await Api.AssertJson(await hub.Reserve(request), HttpStatusCode.Created);

        var again = await Api.AssertJson(await hub.Reserve(request), HttpStatusCode.OK);
        Assert.Equal("held", again.Str("status"));
        Assert.Equal(3, (await hub.Position("SKU-1", "WH1")).Long("reserved"));

        await Api.AssertJson(await hub.Commit("r-idem"), HttpStatusCode.OK);
        var afterCommit = await Api.AssertJson(await hub.Reserve(request), HttpStatusCode.OK);
        Assert.Equal("committed", afterCommit.Str("status"));
        await hub.AssertQuantities("SKU-1", "WH1", 10, 0, 0, 3, 0, 0, 0, 7);
    }

    [Fact]
    public async Task an_explicit_default_ttl_is_the_same_request_as_no_ttl()
    {
        await using var hub = await StockedHub();
        await Api.AssertJson(await hub.Reserve(Api.Reservation("r-default", "web", Api.Line("SKU-1", 3))), HttpStatusCode.Created);

        await Api.AssertJson(await hub.Reserve(Api.Reservation("r-default", "web", Api.Line("SKU-1", 3)).With("ttlSeconds", 900)),
            HttpStatusCode.OK);
    }

    [Theory]
    [InlineData("other quantity")]
    [InlineData("other sku")]
    [InlineData("other location")]
    [InlineData("other ttl")]
    [InlineData("other channel")]
    [InlineData("extra line")]
    public async Task the_same_reservation_id_with_another_body_is_409_idempotency_conflict(string change)
    {
        await using var hub = await StockedHub(warehouse: 10, store: 10);
        await hub.Receive("SKU-2", "WH1", 10);
        await hub.Put("/v1/channels/app", new { name = "App", locations = new[] { "WH1", "S1" } });
        await Api.AssertJson(await hub.Reserve(Api.Reservation("r-1", "web", Api.Line("SKU-1", 3, "WH1"))), HttpStatusCode.Created);

        var other = change switch
        {
            "other quantity" => Api.Reservation("r-1", "web", Api.Line("SKU-1", 4, "WH1")),
            "other sku" => Api.Reservation("r-1", "web", Api.Line("SKU-2", 3, "WH1")),
            "other location" => Api.Reservation("r-1", "web", Api.Line("SKU-1", 3, "S1")),
            "other ttl" => Api.Reservation("r-1", "web", Api.Line("SKU-1", 3, "WH1")).With("ttlSeconds", 60),
            "other channel" => Api.Reservation("r-1", "app", Api.Line("SKU-1", 3, "WH1")),
            _ => Api.Reservation("r-1", "web", Api.Line("SKU-1", 3, "WH1"), Api.Line("SKU-2", 1, "WH1")),
        };
        await Api.AssertProblem(await hub.Reserve(other), HttpStatusCode.Conflict, "idempotency-conflict");

        await hub.AssertQuantities("SKU-1", "WH1", 10, 0, 0, 0, 3, 0, 0, 7);
        await hub.AssertQuantities("SKU-1", "S1", 10, 0, 0, 0, 0, 0, 0, 10);
        Assert.Equal(0, (await hub.Position("SKU-2", "WH1")).Long("reserved"));
    }

    [Fact]
    public async Task reservation_idempotency_and_state_survive_a_restart()
    {
        await using var hub = await StockedHub();
        var held = Api.Reservation("r-held", "web", Api.Line("SKU-1", 2));
        var committed = Api.Reservation("r-committed", "web", Api.Line("SKU-1", 3));
        await Api.AssertJson(await hub.Reserve(held), HttpStatusCode.Created);
        await Api.AssertJson(await hub.Reserve(committed), HttpStatusCode.Created);
        await Api.AssertJson(await hub.Commit("r-committed"), HttpStatusCode.OK);

        await hub.Restart();

        Assert.Equal("held", (await Api.AssertJson(await hub.Reserve(held), HttpStatusCode.OK)).Str("status"));
        Assert.Equal("committed", (await Api.AssertJson(await hub.Reserve(committed), HttpStatusCode.OK)).Str("status"));
        await Api.AssertProblem(await hub.Reserve(Api.Reservation("r-held", "web", Api.Line("SKU-1", 1))), HttpStatusCode.Conflict,
            "idempotency-conflict");
        await hub.AssertQuantities("SKU-1", "WH1", 10, 0, 0, 3, 2, 0, 0, 5);

        // The held one still expires on time after the restart; the committed one does not.
        await hub.Advance(TimeSpan.FromSeconds(901));
        Assert.Equal("expired", await hub.ReservationStatus("r-held"));
        Assert.Equal("committed", await hub.ReservationStatus("r-committed"));
        await hub.AssertQuantities("SKU-1", "WH1", 10, 0, 0, 3, 0, 0, 0, 7);
    }

    /// <summary>
    /// A month of the default 250 ms expiry tick is ten million timer callbacks when the fake clock jumps, which
    /// overfill the engine queue; an hourly tick keeps a month-long jump cheap without changing what is tested.
    /// </summary>
    private static readonly string[] HourlyTicks = ["--Truestock:ExpiryTickMilliseconds=3600000"];

    [Fact]
    public async Task the_same_reservation_request_a_month_later_answers_its_state_and_holds_nothing()
    {
        // The model: the idempotency rules of eventId hold for reservationId too.
        await using var hub = await StockedHub(hubArgs: HourlyTicks);
        var request = Api.Reservation("cart-old", "web", Api.Line("SKU-1", 3));
        await Api.AssertJson(await hub.Reserve(request), HttpStatusCode.Created);
        await Api.AssertJson(await hub.Release("cart-old"), HttpStatusCode.OK);

        await hub.Advance(TimeSpan.FromDays(31));

        var again = await Api.AssertJson(await hub.Reserve(request), HttpStatusCode.OK);
        Assert.Equal("released", again.Str("status"));
        Assert.Equal(0, (await hub.Position("SKU-1", "WH1")).Long("reserved"));
    }

    // ------------------------------------------------------------------ commit and release

    [Fact]
    public async Task commit_moves_units_from_reserved_to_allocated_and_is_idempotent()
    {
        await using var hub = await StockedHub();
        await Api.AssertJson(await hub.Reserve(Api.Reservation("order-1", "web", Api.Line("SKU-1", 4))), HttpStatusCode.Created);

        var committed = await Api.AssertJson(await hub.Commit("order-1"), HttpStatusCode.OK);
        Assert.Equal("committed", committed.Str("status"));
        Assert.Equal("order-1", committed.Str("reservationId"));
        await hub.AssertQuantities("SKU-1", "WH1", 10, 0, 0, 4, 0, 0, 0, 6);

        var again = await Api.AssertJson(await hub.Commit("order-1"), HttpStatusCode.OK);
        Assert.Equal("committed", again.Str("status"));
        await hub.AssertQuantities("SKU-1", "WH1", 10, 0, 0, 4, 0, 0, 0, 6);
        Assert.Equal("committed", await hub.ReservationStatus("order-1"));
    }

    [Fact]
    public async Task release_returns_held_units_and_is_idempotent()
    {
        await using var hub = await StockedHub();
        await Api.AssertJson(await hub.Reserve(Api.Reservation("cart-9", "web", Api.Line("SKU-1", 4))), HttpStatusCode.Created);

        var released = await Api.AssertJson(await hub.Release("cart-9"), HttpStatusCode.OK);
        Assert.Equal("released", released.Str("status"));
        await hub.AssertQuantities("SKU-1", "WH1", 10, 0, 0, 0, 0, 0, 0, 10);

        Assert.Equal("released", (await Api.AssertJson(await hub.Release("cart-9"), HttpStatusCode.OK)).Str("status"));
        await hub.AssertQuantities("SKU-1", "WH1", 10, 0, 0, 0, 0, 0, 0, 10);
        Assert.Equal("released", await hub.ReservationStatus("cart-9"));
    }

    [Fact]
    public async Task releasing_a_committed_reservation_cancels_the_order_and_frees_its_allocated_units()
    {
        await using var hub = await StockedHub();
        await Api.AssertJson(await hub.Reserve(Api.Reservation("order-2", "web", Api.Line("SKU-1", 4))), HttpStatusCode.Created);
        await Api.AssertJson(await hub.Commit("order-2"), HttpStatusCode.OK);

        Assert.Equal("released", (await Api.AssertJson(await hub.Release("order-2"), HttpStatusCode.OK)).Str("status"));

        await hub.AssertQuantities("SKU-1", "WH1", 10, 0, 0, 0, 0, 0, 0, 10);
        Assert.Equal(10, await hub.Ats("SKU-1", "web"));
    }

    [Fact]
    public async Task releasing_a_partly_shipped_order_frees_only_the_unshipped_units()
    {
        await using var hub = await StockedHub();
        await Api.AssertJson(await hub.Reserve(Api.Reservation("order-3", "web", Api.Line("SKU-1", 5))), HttpStatusCode.Created);
        await Api.AssertJson(await hub.Commit("order-3"), HttpStatusCode.OK);
        Assert.Equal(["applied"], await hub.Events(HubServer.Event("shipped", "SKU-1", "WH1", 2).With("reservationId", "order-3")));
        await hub.AssertQuantities("SKU-1", "WH1", 8, 0, 0, 3, 0, 0, 0, 5);

        await Api.AssertJson(await hub.Release("order-3"), HttpStatusCode.OK);

        await hub.AssertQuantities("SKU-1", "WH1", 8, 0, 0, 0, 0, 0, 0, 8);
    }

    [Fact]
    public async Task commit_of_a_released_reservation_is_409_illegal_state()
    {
        await using var hub = await StockedHub();
        await Api.AssertJson(await hub.Reserve(Api.Reservation("cart-2", "web", Api.Line("SKU-1", 4))), HttpStatusCode.Created);
        await Api.AssertJson(await hub.Release("cart-2"), HttpStatusCode.OK);

        await Api.AssertStatusAndType(await hub.Commit("cart-2"), HttpStatusCode.Conflict, "illegal-state");

        Assert.Equal("released", await hub.ReservationStatus("cart-2"));
        await hub.AssertQuantities("SKU-1", "WH1", 10, 0, 0, 0, 0, 0, 0, 10);
    }

    [Fact]
    public async Task release_of_a_fulfilled_reservation_is_409_illegal_state()
    {
        await using var hub = await StockedHub();
        await Api.AssertJson(await hub.Reserve(Api.Reservation("order-4", "web", Api.Line("SKU-1", 2))), HttpStatusCode.Created);
        await Api.AssertJson(await hub.Commit("order-4"), HttpStatusCode.OK);
        await hub.Events(HubServer.Event("shipped", "SKU-1", "WH1", 2).With("reservationId", "order-4"));
        Assert.Equal("fulfilled", await hub.ReservationStatus("order-4"));

        await Api.AssertStatusAndType(await hub.Release("order-4"), HttpStatusCode.Conflict, "illegal-state");
        Assert.Equal("fulfilled", (await Api.AssertJson(await hub.Commit("order-4"), HttpStatusCode.OK)).Str("status"));
        await hub.AssertQuantities("SKU-1", "WH1", 8, 0, 0, 0, 0, 0, 0, 8);
    }

    [Fact]
    public async Task an_illegal_state_answer_is_a_complete_problem_whose_status_member_is_the_http_status()
    {
        await using var hub = await StockedHub();
        await Api.AssertJson(await hub.Reserve(Api.Reservation("cart-3", "web", Api.Line("SKU-1", 1))), HttpStatusCode.Created);
        await Api.AssertJson(await hub.Release("cart-3"), HttpStatusCode.OK);

        // RFC 9457: "status" is the HTTP status code; the reservation's state must travel under another name.
        var problem = await Api.AssertProblem(await hub.Commit("cart-3"), HttpStatusCode.Conflict, "illegal-state");

        Assert.Equal(409, problem.GetProperty("status").GetInt32());
    }

    [Fact]
    public async Task an_unknown_reservation_is_404_for_get_commit_and_release()
    {
        await using var hub = await StockedHub();

        await Api.AssertProblem(await hub.Client.GetAsync("/v1/reservations/nope"), HttpStatusCode.NotFound, "unknown-reservation");
        await Api.AssertProblem(await hub.Commit("nope"), HttpStatusCode.NotFound, "unknown-reservation");
        await Api.AssertProblem(await hub.Release("nope"), HttpStatusCode.NotFound, "unknown-reservation");
    }

    // ------------------------------------------------------------------ expiry with the injected clock

    [Fact]
    public async Task a_held_reservation_expires_after_its_ttl_and_its_units_come_back()
    {
        await using var hub = await StockedHub();
        await Api.AssertJson(await hub.Reserve(Api.Reservation("cart-exp", "web", Api.Line("SKU-1", 4))), HttpStatusCode.Created);

        await hub.Advance(TimeSpan.FromSeconds(899));
        Assert.Equal("held", await hub.ReservationStatus("cart-exp"));
        Assert.Equal(6, await hub.Available("SKU-1", "WH1"));

        await hub.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal("expired", await hub.ReservationStatus("cart-exp"));
        await hub.AssertQuantities("SKU-1", "WH1", 10, 0, 0, 0, 0, 0, 0, 10);
        Assert.Equal(10, await hub.Ats("SKU-1", "web"));
    }

    [Fact]
    public async Task a_custom_ttl_expires_at_its_own_time()
    {
        await using var hub = await StockedHub();
        await Api.AssertJson(await hub.Reserve(Api.Reservation("short", "web", Api.Line("SKU-1", 1)).With("ttlSeconds", 30)), HttpStatusCode.Created);
        await Api.AssertJson(await hub.Reserve(Api.Reservation("long", "web", Api.Line("SKU-1", 2)).With("ttlSeconds", 3600)), HttpStatusCode.Created);

        await hub.Advance(TimeSpan.FromSeconds(31));

        Assert.Equal("expired", await hub.ReservationStatus("short"));
        Assert.Equal("held", await hub.ReservationStatus("long"));
        Assert.Equal(2, (await hub.Position("SKU-1", "WH1")).Long("reserved"));
    }

    [Fact]
    public async Task commit_of_an_expired_reservation_is_409_and_the_same_request_again_shows_it_expired()
    {
        await using var hub = await StockedHub();
        var request = Api.Reservation("cart-late", "web", Api.Line("SKU-1", 4));
        await Api.AssertJson(await hub.Reserve(request), HttpStatusCode.Created);
        await hub.Advance(TimeSpan.FromSeconds(901));

        await Api.AssertStatusAndType(await hub.Commit("cart-late"), HttpStatusCode.Conflict, "illegal-state");
        Assert.Equal("expired", await hub.ReservationStatus("cart-late"));
        Assert.Equal("expired", (await Api.AssertJson(await hub.Reserve(request), HttpStatusCode.OK)).Str("status"));
        await hub.AssertQuantities("SKU-1", "WH1", 10, 0, 0, 0, 0, 0, 0, 10);
    }

    [Fact]
    public async Task a_committed_reservation_never_expires()
    {
        await using var hub = await StockedHub();
        await Api.AssertJson(await hub.Reserve(Api.Reservation("order-5", "web", Api.Line("SKU-1", 4)).With("ttlSeconds", 60)), HttpStatusCode.Created);
        await Api.AssertJson(await hub.Commit("order-5"), HttpStatusCode.OK);

        await hub.Advance(TimeSpan.FromHours(2));

        Assert.Equal("committed", await hub.ReservationStatus("order-5"));
        await hub.AssertQuantities("SKU-1", "WH1", 10, 0, 0, 4, 0, 0, 0, 6);
    }

    [Fact]
    public async Task expired_units_can_be_reserved_again()
    {
        await using var hub = await StockedHub(warehouse: 3);
        await Api.AssertJson(await hub.Reserve(Api.Reservation("first", "web", Api.Line("SKU-1", 3))), HttpStatusCode.Created);
        await Api.AssertProblem(await hub.Reserve(Api.Reservation("second", "web", Api.Line("SKU-1", 3))), HttpStatusCode.Conflict,
            "insufficient-stock");

        await hub.Advance(TimeSpan.FromMinutes(16));

        await Api.AssertJson(await hub.Reserve(Api.Reservation("second", "web", Api.Line("SKU-1", 3))), HttpStatusCode.Created);
    }

    // ------------------------------------------------------------------ 422 for unknown master data

    [Fact]
    public async Task a_reservation_through_an_unknown_channel_is_422()
    {
        await using var hub = await StockedHub();

        var problem = await Api.AssertProblem(await hub.Reserve(Api.Reservation("r-1", "nope", Api.Line("SKU-1", 1))),
            HttpStatusCode.UnprocessableEntity, "unknown-channel");

        Assert.Contains("channelId", Api.ErrorKeys(problem));
        Assert.Equal(10, await hub.Available("SKU-1", "WH1"));
    }

    [Fact]
    public async Task a_reservation_line_at_an_undeclared_location_is_422()
    {
        await using var hub = await StockedHub();

        await Api.AssertProblem(await hub.Reserve(Api.Reservation("r-1", "web", Api.Line("SKU-1", 1, "NOPE"))),
            HttpStatusCode.UnprocessableEntity, "unknown-location");
    }

    [Fact]
    public async Task a_reservation_line_at_a_location_outside_the_channels_sourcing_list_is_422()
    {
        await using var hub = await StockedHub();
        await hub.Put("/v1/locations/S9", new { name = "Store 9", type = "store" });
        await hub.Receive("SKU-1", "S9", 5);

        await Api.AssertProblem(await hub.Reserve(Api.Reservation("r-1", "web", Api.Line("SKU-1", 1, "S9"))),
            HttpStatusCode.UnprocessableEntity, "location-not-sourced");

        Assert.Equal(5, await hub.Available("SKU-1", "S9"));
    }

    // ------------------------------------------------------------------ request validation

    public static TheoryData<string, string> InvalidRequests() => new()
    {
        { "{\"channelId\":\"web\",\"lines\":[{\"sku\":\"SKU-1\",\"quantity\":1}]}", "reservationId" },
        { "{\"reservationId\":\"has space\",\"channelId\":\"web\",\"lines\":[{\"sku\":\"SKU-1\",\"quantity\":1}]}", "reservationId" },
        { "{\"reservationId\":\"" + new string('r', 65) + "\",\"channelId\":\"web\",\"lines\":[{\"sku\":\"SKU-1\",\"quantity\":1}]}", "reservationId" },
        { "{\"reservationId\":\"r1\",\"lines\":[{\"sku\":\"SKU-1\",\"quantity\":1}]}", "channelId" },
        { "{\"reservationId\":\"r1\",\"channelId\":\"web\"}", "lines" },
        { "{\"reservationId\":\"r1\",\"channelId\":\"web\",\"lines\":[]}", "lines" },
        { "{\"reservationId\":\"r1\",\"channelId\":\"web\",\"lines\":[" + string.Join(",", Enumerable.Repeat("{\"sku\":\"SKU-1\",\"quantity\":1}", 101)) + "]}", "lines" },
        { "{\"reservationId\":\"r1\",\"channelId\":\"web\",\"lines\":[{\"quantity\":1}]}", "lines[0].sku" },
        { "{\"reservationId\":\"r1\",\"channelId\":\"web\",\"lines\":[{\"sku\":\"SKU-1\"}]}", "lines[0].quantity" },
        { "{\"reservationId\":\"r1\",\"channelId\":\"web\",\"lines\":[{\"sku\":\"SKU-1\",\"quantity\":0}]}", "lines[0].quantity" },
        { "{\"reservationId\":\"r1\",\"channelId\":\"web\",\"lines\":[{\"sku\":\"SKU-1\",\"quantity\":-2}]}", "lines[0].quantity" },
        { "{\"reservationId\":\"r1\",\"channelId\":\"web\",\"lines\":[{\"sku\":\"SKU-1\",\"quantity\":1000000001}]}", "lines[0].quantity" },
        { "{\"reservationId\":\"r1\",\"channelId\":\"web\",\"lines\":[{\"sku\":\"SKU-1\",\"quantity\":1,\"locationId\":\"W H\"}]}", "lines[0].locationId" },
        { "{\"reservationId\":\"r1\",\"channelId\":\"web\",\"ttlSeconds\":0,\"lines\":[{\"sku\":\"SKU-1\",\"quantity\":1}]}", "ttlSeconds" },
        { "{\"reservationId\":\"r1\",\"channelId\":\"web\",\"ttlSeconds\":604801,\"lines\":[{\"sku\":\"SKU-1\",\"quantity\":1}]}", "ttlSeconds" },
    };

    [Theory]
    [MemberData(nameof(InvalidRequests))]
    public async Task an_invalid_reservation_request_is_422_keyed_by_its_field_and_holds_nothing(string json, string field)
    {
        await using var hub = await StockedHub();

        await Api.AssertFieldError(await hub.PostRaw("/v1/reservations", json), field);

        await hub.AssertQuantities("SKU-1", "WH1", 10, 0, 0, 0, 0, 0, 0, 10);
    }

    [Theory]
    [InlineData("{\"reservationId\":\"r1\",\"channelId\":\"web\",\"lines\":{\"sku\":\"SKU-1\",\"quantity\":1}}", "lines")]
    [InlineData("{\"reservationId\":\"r1\",\"channelId\":\"web\",\"lines\":[\"SKU-1\"]}", "lines[0]")]
    [InlineData("{\"reservationId\":\"r1\",\"channelId\":\"web\",\"lines\":[{\"sku\":\"SKU-1\",\"quantity\":\"1\"}]}", "lines[0].quantity")]
    [InlineData("{\"reservationId\":\"r1\",\"channelId\":\"web\",\"ttlSeconds\":\"60\",\"lines\":[{\"sku\":\"SKU-1\",\"quantity\":1}]}", "ttlSeconds")]
    [InlineData("{\"reservationId\":1,\"channelId\":\"web\",\"lines\":[{\"sku\":\"SKU-1\",\"quantity\":1}]}", "reservationId")]
    public async Task a_reservation_request_with_a_wrong_json_type_is_400(string json, string field)
    {
        await using var hub = await StockedHub();

        await Api.AssertFieldError(await hub.PostRaw("/v1/reservations", json), field, HttpStatusCode.BadRequest);

        Assert.Equal(10, await hub.Available("SKU-1", "WH1"));
    }

    [Fact]
    public async Task a_malformed_reservation_body_is_400()
    {
        await using var hub = await StockedHub();

        await Api.AssertProblem(await hub.PostRaw("/v1/reservations", "{\"reservationId\":"), HttpStatusCode.BadRequest, "malformed-request");
    }
}
