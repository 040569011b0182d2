using System.Net;
using System.Text;
using System.Text.Json;

namespace Truestock.Server.Tests;

/// <summary>POST /v1/events over HTTP: effects, per-event outcomes, idempotency, validation and the count ordering rule.</summary>
public sealed class ApiEventsTests
{
    private static readonly DateTimeOffset T0 = HubServer.Epoch;

    private static Dictionary<string, object?> Ev(string type, long quantity, string location = "WH1", DateTimeOffset? at = null, string? id = null,
        string sku = "SKU-1") => HubServer.Event(type, sku, location, quantity, at, id);

    // ------------------------------------------------------------------ effects of each type

    [Fact]
    public async Task received_and_sold_move_on_hand_and_available_and_answer_applied_in_request_order()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();

        var results = await hub.PostEvents(Ev("received", 10, id: "r-1"), Ev("sold", 3, id: "s-1"));

        Assert.Equal(["r-1", "s-1"], results.Select(r => r.Str("eventId")).ToArray());
        Assert.Equal(["applied", "applied"], results.Select(r => r.Str("status")).ToArray());
        Assert.All(results, r => Assert.False(r.TryGetProperty("error", out _)));
        await hub.AssertQuantities("SKU-1", "WH1", 7, 0, 0, 0, 0, 0, 0, 7);
        Assert.Equal(7, await hub.Ats("SKU-1", "web"));
    }

    [Fact]
    public async Task adjusted_with_a_reason_adds_its_signed_quantity_to_on_hand()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();

        Assert.Equal(["applied", "applied"], await hub.Events(
            Ev("adjusted", 5).With("reason", "found in back room"),
            Ev("adjusted", -2).With("reason", "shrinkage")));

        Assert.Equal(3, await hub.OnHand("SKU-1", "WH1"));
    }

    [Fact]
    public async Task damaged_then_written_off_moves_units_out_of_available_then_out_of_on_hand()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Receive("SKU-1", "WH1", 10);

        await hub.Events(Ev("damaged", 3));
        await hub.AssertQuantities("SKU-1", "WH1", 10, 3, 0, 0, 0, 0, 0, 7);

        await hub.Events(Ev("written_off", 2));
        await hub.AssertQuantities("SKU-1", "WH1", 8, 1, 0, 0, 0, 0, 0, 7);
    }

    [Fact]
    public async Task returns_wait_in_inspection_and_each_disposition_has_its_effect()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();

        await hub.Events(Ev("return_received", 6));
        await hub.AssertQuantities("SKU-1", "WH1", 6, 0, 6, 0, 0, 0, 0, 0);

        Assert.Equal(["applied", "applied", "applied"], await hub.Events(
            Ev("inspected", 3).With("disposition", "restock"),
            Ev("inspected", 2).With("disposition", "damaged"),
            Ev("inspected", 1).With("disposition", "scrap")));

        // restock 3 → sellable; damaged 2 → damaged; scrap 1 → leaves onHand.
        await hub.AssertQuantities("SKU-1", "WH1", 5, 2, 0, 0, 0, 0, 0, 3);
    }

    [Fact]
    public async Task a_transfer_leaves_the_source_and_is_incoming_at_the_destination_until_received()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Receive("SKU-1", "WH1", 10);

        await hub.Events(Ev("transfer_shipped", 4).With("toLocationId", "S1"));
        await hub.AssertQuantities("SKU-1", "WH1", 6, 0, 0, 0, 0, 0, 0, 6);
        await hub.AssertQuantities("SKU-1", "S1", 0, 0, 0, 0, 0, 4, 0, 0);

        await hub.Events(Ev("transfer_received", 4, "S1"));
        await hub.AssertQuantities("SKU-1", "S1", 4, 0, 0, 0, 0, 0, 0, 4);
        Assert.Equal(10, await hub.Ats("SKU-1", "web"));
    }

    [Fact]
    public async Task shipped_without_a_reservation_is_like_a_sale()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Receive("SKU-1", "WH1", 10);

        Assert.Equal(["applied"], await hub.Events(Ev("shipped", 4)));

        await hub.AssertQuantities("SKU-1", "WH1", 6, 0, 0, 0, 0, 0, 0, 6);
    }

    [Fact]
    public async Task events_of_one_batch_apply_in_their_order()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();

        // A count of 5 and then a sale of 2 gives 3; the other order would give 5.
        Assert.Equal(["applied", "applied"], await hub.Events(
            Ev("counted", 5, at: T0.AddMinutes(1)),
            Ev("sold", 2, at: T0.AddMinutes(2))));

        Assert.Equal(3, await hub.OnHand("SKU-1", "WH1"));
    }

    [Fact]
    public async Task selling_more_than_is_on_hand_is_applied_and_shows_negative_on_hand_and_available()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Receive("SKU-1", "WH1", 2);

        Assert.Equal(["applied"], await hub.Events(Ev("sold", 5)));

        await hub.AssertQuantities("SKU-1", "WH1", -3, 0, 0, 0, 0, 0, 0, -3);
        Assert.Equal(0, await hub.Ats("SKU-1", "web"));
    }

    [Fact]
    public async Task skus_are_case_sensitive()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();

        await hub.Events(Ev("received", 5, sku: "abc"), Ev("received", 7, sku: "ABC"));

        Assert.Equal(5, await hub.OnHand("abc", "WH1"));
        Assert.Equal(7, await hub.OnHand("ABC", "WH1"));
    }

    // ------------------------------------------------------------------ idempotency

    [Fact]
    public async Task a_duplicate_event_is_answered_duplicate_and_changes_nothing()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        var received = Ev("received", 10, id: "dup-1");

        Assert.Equal(["applied"], await hub.Events(received));
        Assert.Equal(["duplicate"], await hub.Events(received));
        Assert.Equal(["duplicate", "duplicate"], await hub.Events(received, received));

        Assert.Equal(10, await hub.OnHand("SKU-1", "WH1"));
    }

    [Fact]
    public async Task a_duplicate_within_one_batch_applies_once()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        var received = Ev("received", 10, id: "dup-2");

        Assert.Equal(["applied", "duplicate"], await hub.Events(received, received));

        Assert.Equal(10, await hub.OnHand("SKU-1", "WH1"));
    }

    [Fact]
    public async Task a_duplicate_under_another_correlation_id_is_still_a_duplicate()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();

        await hub.Events(Ev("received", 10, id: "dup-3").With("correlationId", "first-try"));
        Assert.Equal(["duplicate"], await hub.Events(Ev("received", 10, id: "dup-3").With("correlationId", "retry")));

        Assert.Equal(10, await hub.OnHand("SKU-1", "WH1"));
    }

    [Fact]
    public async Task the_same_instant_written_with_another_offset_is_the_same_event()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();

        await hub.Events(Ev("received", 10, id: "dup-4").With("occurredAt", "2026-11-23T09:00:00Z"));
        Assert.Equal(["duplicate"], await hub.Events(Ev("received", 10, id: "dup-4").With("occurredAt", "2026-11-23T10:00:00+01:00")));

        Assert.Equal(10, await hub.OnHand("SKU-1", "WH1"));
    }

    [Fact]
    public async Task the_same_event_id_with_other_content_is_rejected_as_an_idempotency_conflict_while_the_batch_applies()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Events(Ev("received", 10, id: "evt-1"));

        var results = await hub.PostEvents(Ev("received", 99, id: "evt-1"), Ev("received", 1, id: "evt-2"));

        Assert.Equal("rejected", results[0].Str("status"));
        Assert.EndsWith("idempotency-conflict", results[0].GetProperty("error").Str("type"), StringComparison.Ordinal);
        Assert.False(string.IsNullOrWhiteSpace(results[0].GetProperty("error").Str("detail")));
        Assert.Equal("applied", results[1].Str("status"));
        Assert.Equal(11, await hub.OnHand("SKU-1", "WH1"));

        // The original content is still the one remembered.
        Assert.Equal(["duplicate"], await hub.Events(Ev("received", 10, id: "evt-1")));
    }

    [Fact]
    public async Task duplicates_and_conflicts_are_still_recognised_after_a_restart()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Events(Ev("received", 10, id: "persist-1"), Ev("sold", 3, id: "persist-2"));

        await hub.Restart();

        Assert.Equal(["duplicate", "duplicate"], await hub.Events(Ev("received", 10, id: "persist-1"), Ev("sold", 3, id: "persist-2")));
        var conflict = await hub.PostEvents(Ev("received", 11, id: "persist-1"));
        Assert.EndsWith("idempotency-conflict", conflict[0].GetProperty("error").Str("type"), StringComparison.Ordinal);
        Assert.Equal(7, await hub.OnHand("SKU-1", "WH1"));
    }

    /// <summary>
    /// A month of the default 250 ms expiry tick is ten million timer callbacks when the fake clock jumps, which
    /// overfill the engine queue; an hourly tick keeps a month-long jump cheap without changing what is tested.
    /// </summary>
    private static readonly string[] HourlyTicks = ["--Truestock:ExpiryTickMilliseconds=3600000"];

    [Fact]
    public async Task a_duplicate_event_is_still_a_duplicate_a_month_later()
    {
        // The model: eventId is unique forever and a duplicate delivery never changes a quantity (invariant 3).
        await using var hub = await HubServer.Start(HourlyTicks);
        await hub.Setup();
        await hub.Events(Ev("received", 10, id: "backlog-1"));

        await hub.Advance(TimeSpan.FromDays(31));

        Assert.Equal(["duplicate"], await hub.Events(Ev("received", 10, id: "backlog-1")));
        Assert.Equal(10, await hub.OnHand("SKU-1", "WH1"));
    }

    // ------------------------------------------------------------------ state-dependent rejections

    [Fact]
    public async Task an_event_at_an_undeclared_location_is_rejected_while_the_rest_of_the_batch_applies()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();

        var results = await hub.PostEvents(Ev("received", 5, id: "ok-1"), Ev("received", 5, "NOPE", id: "bad-1"), Ev("received", 2, id: "ok-2"));

        Assert.Equal(["applied", "rejected", "applied"], results.Select(r => r.Str("status")).ToArray());
        Assert.EndsWith("unknown-location", results[1].GetProperty("error").Str("type"), StringComparison.Ordinal);
        Assert.Equal(7, await hub.OnHand("SKU-1", "WH1"));
        // NOPE is not a location, so availability does not list it.
        var view = await hub.GetJson("/v1/availability/SKU-1");
        Assert.DoesNotContain(view.GetProperty("locations").EnumerateArray(), l => l.Str("locationId") == "NOPE");
    }

    [Fact]
    public async Task a_rejected_event_id_can_be_reused_once_the_location_is_declared()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();

        Assert.Equal(["rejected"], await hub.Events(Ev("received", 5, "S2", id: "late-loc")));
        await Api.AssertJson(await hub.Put("/v1/locations/S2", new { name = "Store 2", type = "store" }), HttpStatusCode.Created);

        Assert.Equal(["applied"], await hub.Events(Ev("received", 5, "S2", id: "late-loc")));
        Assert.Equal(["duplicate"], await hub.Events(Ev("received", 5, "S2", id: "late-loc")));
        Assert.Equal(5, await hub.OnHand("SKU-1", "S2"));
    }

    [Fact]
    public async Task a_transfer_to_an_undeclared_location_is_rejected_and_leaves_the_source_unchanged()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Receive("SKU-1", "WH1", 10);

        var results = await hub.PostEvents(Ev("transfer_shipped", 4).With("toLocationId", "NOPE"));

        Assert.Equal("rejected", results[0].Str("status"));
        Assert.EndsWith("unknown-location", results[0].GetProperty("error").Str("type"), StringComparison.Ordinal);
        Assert.Equal(10, await hub.OnHand("SKU-1", "WH1"));
    }

    [Fact]
    public async Task a_shipment_against_an_unknown_reservation_is_rejected()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Receive("SKU-1", "WH1", 10);

        var results = await hub.PostEvents(Ev("shipped", 1).With("reservationId", "no-such-order"));

        Assert.Equal("rejected", results[0].Str("status"));
        Assert.EndsWith("unknown-reservation", results[0].GetProperty("error").Str("type"), StringComparison.Ordinal);
        Assert.Equal(10, await hub.OnHand("SKU-1", "WH1"));
    }

    [Fact]
    public async Task a_shipment_of_a_held_reservation_is_rejected_until_it_is_committed_then_the_same_event_applies()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Receive("SKU-1", "WH1", 10);
        await Api.AssertJson(await hub.Reserve(Api.Reservation("order-1", "web", Api.Line("SKU-1", 3, "WH1"))), HttpStatusCode.Created);
        var shipment = Ev("shipped", 3, id: "ship-1").With("reservationId", "order-1");

        var first = await hub.PostEvents(shipment);
        Assert.Equal("rejected", first[0].Str("status"));
        Assert.EndsWith("reservation-not-committed", first[0].GetProperty("error").Str("type"), StringComparison.Ordinal);
        await hub.AssertQuantities("SKU-1", "WH1", 10, 0, 0, 0, 3, 0, 0, 7);

        await Api.AssertJson(await hub.Commit("order-1"), HttpStatusCode.OK);
        await hub.AssertQuantities("SKU-1", "WH1", 10, 0, 0, 3, 0, 0, 0, 7);

        Assert.Equal(["applied"], await hub.Events(shipment));
        await hub.AssertQuantities("SKU-1", "WH1", 7, 0, 0, 0, 0, 0, 0, 7);
        Assert.Equal("fulfilled", await hub.ReservationStatus("order-1"));
    }

    [Fact]
    public async Task a_shipment_naming_a_reservation_without_that_line_is_rejected()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Receive("SKU-1", "WH1", 10);
        await Api.AssertJson(await hub.Reserve(Api.Reservation("order-2", "web", Api.Line("SKU-1", 3, "WH1"))), HttpStatusCode.Created);
        await Api.AssertJson(await hub.Commit("order-2"), HttpStatusCode.OK);

        var results = await hub.PostEvents(Ev("shipped", 3, "S1").With("reservationId", "order-2"));

        Assert.Equal("rejected", results[0].Str("status"));
        Assert.EndsWith("reservation-line-not-found", results[0].GetProperty("error").Str("type"), StringComparison.Ordinal);
    }

    // ------------------------------------------------------------------ count ordering rule

    [Fact]
    public async Task a_sale_that_arrives_late_but_happened_before_a_count_is_superseded_by_the_count()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Events(Ev("received", 10, at: T0));
        Assert.Equal(["applied"], await hub.Events(Ev("counted", 8, at: T0.AddHours(2))));

        // The store was offline: a sale from before the count arrives now. The count already saw it.
        Assert.Equal(["superseded"], await hub.Events(Ev("sold", 2, at: T0.AddHours(1))));

        Assert.Equal(8, await hub.OnHand("SKU-1", "WH1"));
    }

    [Fact]
    public async Task a_superseded_event_still_applies_its_non_on_hand_effects()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Events(Ev("counted", 10, at: T0.AddHours(2)));

        Assert.Equal(["superseded"], await hub.Events(Ev("damaged", 2, at: T0.AddHours(1))));
        Assert.Equal(["superseded"], await hub.Events(Ev("return_received", 1, at: T0.AddHours(1))));

        await hub.AssertQuantities("SKU-1", "WH1", 10, 2, 1, 0, 0, 0, 0, 7);
    }

    [Fact]
    public async Task an_event_at_the_same_instant_as_the_count_is_superseded()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Events(Ev("counted", 10, at: T0.AddHours(2)));

        Assert.Equal(["superseded"], await hub.Events(Ev("received", 5, at: T0.AddHours(2))));

        Assert.Equal(10, await hub.OnHand("SKU-1", "WH1"));
    }

    [Fact]
    public async Task a_count_older_than_the_latest_count_is_stale_and_changes_nothing()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        Assert.Equal(["applied"], await hub.Events(Ev("counted", 10, at: T0.AddHours(2))));

        Assert.Equal(["stale"], await hub.Events(Ev("counted", 4, at: T0.AddHours(1))));

        Assert.Equal(10, await hub.OnHand("SKU-1", "WH1"));
    }

    [Fact]
    public async Task a_late_count_adds_back_the_movements_that_happened_after_it()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Events(
            Ev("received", 10, at: T0),
            Ev("sold", 3, at: T0.AddHours(3)),
            Ev("received", 5, at: T0.AddHours(4)));
        Assert.Equal(12, await hub.OnHand("SKU-1", "WH1"));

        // A count taken at +2h arrives now: 9 units then, and −3 + 5 happened after it.
        Assert.Equal(["applied"], await hub.Events(Ev("counted", 9, at: T0.AddHours(2))));

        Assert.Equal(11, await hub.OnHand("SKU-1", "WH1"));

        // A movement later than the count applies as usual.
        Assert.Equal(["applied"], await hub.Events(Ev("sold", 1, at: T0.AddHours(2.5))));
        Assert.Equal(10, await hub.OnHand("SKU-1", "WH1"));
    }

    [Fact]
    public async Task a_newer_count_replaces_on_hand_and_movements_after_it_still_apply()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Events(Ev("received", 10, at: T0), Ev("counted", 7, at: T0.AddHours(1)));
        Assert.Equal(7, await hub.OnHand("SKU-1", "WH1"));

        Assert.Equal(["applied", "applied"], await hub.Events(Ev("counted", 6, at: T0.AddHours(2)), Ev("sold", 1, at: T0.AddHours(3))));

        Assert.Equal(5, await hub.OnHand("SKU-1", "WH1"));
    }

    [Fact]
    public async Task the_count_ordering_rule_holds_across_a_restart()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Events(Ev("received", 10, at: T0), Ev("sold", 3, at: T0.AddHours(3)));

        await hub.Restart();

        // The movement history survives: a late count still adds back the later sale.
        Assert.Equal(["applied"], await hub.Events(Ev("counted", 9, at: T0.AddHours(2))));
        Assert.Equal(6, await hub.OnHand("SKU-1", "WH1"));
        await hub.Restart();
        Assert.Equal(["superseded"], await hub.Events(Ev("sold", 1, at: T0.AddHours(1))));
        Assert.Equal(["stale"], await hub.Events(Ev("counted", 1, at: T0.AddHours(1))));
        Assert.Equal(6, await hub.OnHand("SKU-1", "WH1"));
    }

    // ------------------------------------------------------------------ request-level validation

    public static TheoryData<string, string> InvalidEvents() => new()
    {
        { "missing eventId", "events[0].eventId" },
        { "eventId with a space", "events[0].eventId" },
        { "eventId of 65 characters", "events[0].eventId" },
        { "empty eventId", "events[0].eventId" },
        { "unknown type", "events[0].type" },
        { "missing type", "events[0].type" },
        { "missing sku", "events[0].sku" },
        { "sku of 65 characters", "events[0].sku" },
        { "missing locationId", "events[0].locationId" },
        { "locationId with a slash", "events[0].locationId" },
        { "missing quantity", "events[0].quantity" },
        { "quantity above one billion", "events[0].quantity" },
        { "adjustment below minus one billion", "events[0].quantity" },
        { "fractional quantity", "events[0].quantity" },
        { "received of zero", "events[0].quantity" },
        { "sold of a negative quantity", "events[0].quantity" },
        { "adjusted of zero", "events[0].quantity" },
        { "counted below zero", "events[0].quantity" },
        { "missing occurredAt", "events[0].occurredAt" },
        { "occurredAt without offset", "events[0].occurredAt" },
        { "occurredAt as a date only", "events[0].occurredAt" },
        { "occurredAt that is not a date", "events[0].occurredAt" },
        { "missing source", "events[0].source" },
        { "negative sourceSeq", "events[0].sourceSeq" },
        { "adjusted without reason", "events[0].reason" },
        { "inspected without disposition", "events[0].disposition" },
        { "inspected with an unknown disposition", "events[0].disposition" },
        { "disposition on a received event", "events[0].disposition" },
        { "transfer without toLocationId", "events[0].toLocationId" },
        { "transfer to its own location", "events[0].toLocationId" },
        { "toLocationId on a sale", "events[0].toLocationId" },
        { "reservationId on a received event", "events[0].reservationId" },
    };

    private static Dictionary<string, object?> InvalidEvent(string name)
    {
        var e = Ev("received", 1);
        return name switch
        {
            "missing eventId" => e.Without("eventId"),
            "eventId with a space" => e.With("eventId", "has space"),
            "eventId of 65 characters" => e.With("eventId", new string('e', 65)),
            "empty eventId" => e.With("eventId", ""),
            "unknown type" => e.With("type", "stolen"),
            "missing type" => e.Without("type"),
            "missing sku" => e.Without("sku"),
            "sku of 65 characters" => e.With("sku", new string('s', 65)),
            "missing locationId" => e.Without("locationId"),
            "locationId with a slash" => e.With("locationId", "WH/1"),
            "missing quantity" => e.Without("quantity"),
            "quantity above one billion" => e.With("quantity", 1_000_000_001L),
            "adjustment below minus one billion" => e.With("type", "adjusted").With("reason", "r").With("quantity", -1_000_000_001L),
            "fractional quantity" => e.With("quantity", 1.5),
            "received of zero" => e.With("quantity", 0),
            "sold of a negative quantity" => e.With("type", "sold").With("quantity", -1),
            "adjusted of zero" => e.With("type", "adjusted").With("reason", "r").With("quantity", 0),
            "counted below zero" => e.With("type", "counted").With("quantity", -1),
            "missing occurredAt" => e.Without("occurredAt"),
            "occurredAt without offset" => e.With("occurredAt", "2026-11-23T09:00:00"),
            "occurredAt as a date only" => e.With("occurredAt", "2026-11-23"),
            "occurredAt that is not a date" => e.With("occurredAt", "yesterday"),
            "missing source" => e.Without("source"),
            "negative sourceSeq" => e.With("sourceSeq", -1),
            "adjusted without reason" => e.With("type", "adjusted"),
            "inspected without disposition" => e.With("type", "inspected"),
            "inspected with an unknown disposition" => e.With("type", "inspected").With("disposition", "repair"),
            "disposition on a received event" => e.With("disposition", "restock"),
            "transfer without toLocationId" => e.With("type", "transfer_shipped"),
            "transfer to its own location" => e.With("type", "transfer_shipped").With("toLocationId", "WH1"),
            "toLocationId on a sale" => e.With("type", "sold").With("toLocationId", "S1"),
            "reservationId on a received event" => e.With("reservationId", "order-1"),
            _ => throw new ArgumentOutOfRangeException(nameof(name), name, null),
        };
    }

    [Theory]
    [MemberData(nameof(InvalidEvents))]
    public async Task an_invalid_event_fails_the_whole_request_with_422_keyed_by_its_field(string invalid, string field)
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();

        var response = await hub.Post("/v1/events", new { events = new object[] { InvalidEvent(invalid) } });

        var problem = await Api.AssertFieldError(response, field);
        Assert.EndsWith("validation-failed", problem.Str("type"), StringComparison.Ordinal);
        await hub.AssertQuantities("SKU-1", "WH1", 0, 0, 0, 0, 0, 0, 0, 0);
    }

    [Fact]
    public async Task a_request_with_valid_and_invalid_events_is_422_changes_nothing_and_names_every_bad_field()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Receive("SKU-1", "WH1", 10);

        var response = await hub.Post("/v1/events", new
        {
            events = new object[]
            {
                Ev("received", 5, id: "valid-1"),
                Ev("sold", 2, id: "valid-2"),
                Ev("received", 5).With("quantity", 2_000_000_000L),
                Ev("sold", 1).With("occurredAt", "2026-11-23 09:00"),
            },
        });

        var problem = await Api.AssertProblem(response, HttpStatusCode.UnprocessableEntity);
        Assert.Equal(["events[2].quantity", "events[3].occurredAt"], Api.ErrorKeys(problem).Order(StringComparer.Ordinal).ToArray());
        await hub.AssertQuantities("SKU-1", "WH1", 10, 0, 0, 0, 0, 0, 0, 10);

        // The valid events were not consumed: their ids apply when sent again on their own.
        Assert.Equal(["applied", "applied"], await hub.Events(Ev("received", 5, id: "valid-1"), Ev("sold", 2, id: "valid-2")));
        Assert.Equal(13, await hub.OnHand("SKU-1", "WH1"));
    }

    [Fact]
    public async Task a_request_with_valid_events_and_a_wrong_json_type_is_400_and_changes_nothing()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        await hub.Receive("SKU-1", "WH1", 10);

        var response = await hub.Post("/v1/events", new
        {
            events = new object[] { Ev("received", 5, id: "valid-3"), Ev("received", 5).With("quantity", "5") },
        });

        await Api.AssertFieldError(response, "events[1].quantity", HttpStatusCode.BadRequest);
        Assert.Equal(10, await hub.OnHand("SKU-1", "WH1"));
        Assert.Equal(["applied"], await hub.Events(Ev("received", 5, id: "valid-3")));
    }

    [Theory]
    [InlineData("{\"events\": [", null)]
    [InlineData("not json", null)]
    [InlineData("[]", null)]
    [InlineData("{\"events\": {}}", "events")]
    [InlineData("{\"events\": \"all\"}", "events")]
    [InlineData("{\"events\": [42]}", "events[0]")]
    [InlineData("{\"events\": [{\"eventId\": 7, \"type\": \"received\", \"sku\": \"A\", \"locationId\": \"WH1\", \"quantity\": 1, \"occurredAt\": \"2026-11-23T09:00:00Z\", \"source\": \"wms\"}]}", "events[0].eventId")]
    [InlineData("{\"events\": [{\"eventId\": \"e1\", \"type\": \"received\", \"sku\": \"A\", \"locationId\": \"WH1\", \"quantity\": true, \"occurredAt\": \"2026-11-23T09:00:00Z\", \"source\": \"wms\"}]}", "events[0].quantity")]
    [InlineData("{\"events\": [{\"eventId\": \"e1\", \"type\": \"received\", \"sku\": [\"A\"], \"locationId\": \"WH1\", \"quantity\": 1, \"occurredAt\": \"2026-11-23T09:00:00Z\", \"source\": \"wms\"}]}", "events[0].sku")]
    [InlineData("{\"events\": [{\"eventId\": \"e1\", \"type\": \"received\", \"sku\": \"A\", \"locationId\": \"WH1\", \"quantity\": 1, \"occurredAt\": 1795424400, \"source\": \"wms\"}]}", "events[0].occurredAt")]
    public async Task malformed_json_or_a_wrong_json_type_is_400(string json, string? field)
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();

        var response = await hub.PostRaw("/v1/events", json);

        if (field is null)
        {
            await Api.AssertProblem(response, HttpStatusCode.BadRequest, "malformed-request");
        }
        else
        {
            await Api.AssertFieldError(response, field, HttpStatusCode.BadRequest);
        }
        Assert.Equal(0, await hub.OnHand("A", "WH1"));
    }

    [Fact]
    public async Task an_empty_body_is_400()
    {
        await using var hub = await HubServer.Start();

        await Api.AssertProblem(await hub.PostRaw("/v1/events", ""), HttpStatusCode.BadRequest);
    }

    [Theory]
    [InlineData("{\"events\": []}")]
    [InlineData("{}")]
    [InlineData("{\"events\": null}")]
    public async Task an_empty_or_missing_events_array_is_422(string json)
    {
        await using var hub = await HubServer.Start();

        await Api.AssertFieldError(await hub.PostRaw("/v1/events", json), "events");
    }

    [Fact]
    public async Task one_thousand_events_are_accepted_in_one_request_but_one_thousand_and_one_are_422()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();

        var tooMany = Enumerable.Range(0, 1001).Select(i => (object)Ev("received", 1, id: $"many-{i}")).ToArray();
        await Api.AssertFieldError(await hub.Post("/v1/events", new { events = tooMany }), "events");
        Assert.Equal(0, await hub.OnHand("SKU-1", "WH1"));

        var results = await hub.PostEvents(tooMany[..1000]);
        Assert.Equal(1000, results.Length);
        Assert.All(results, r => Assert.Equal("applied", r.Str("status")));
        Assert.Equal(1000, await hub.OnHand("SKU-1", "WH1"));
    }

    [Fact]
    public async Task a_body_over_4_MiB_is_413_and_changes_nothing()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();

        // A syntactically valid body just over the limit: one event padded with whitespace.
        var ev = JsonSerializer.Serialize(Ev("received", 5));
        var json = "{\"events\": [" + ev + new string(' ', (4 * 1024 * 1024) + 1 - ev.Length) + "]}";
        Assert.True(Encoding.UTF8.GetByteCount(json) > 4 * 1024 * 1024);

        var response = await hub.PostRaw("/v1/events", json);

        await Api.AssertProblem(response, HttpStatusCode.RequestEntityTooLarge);
        Assert.Equal(0, await hub.OnHand("SKU-1", "WH1"));
    }

    [Fact]
    public async Task a_body_over_4_MiB_without_content_length_is_413()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();
        var ev = JsonSerializer.Serialize(Ev("received", 5));
        var bytes = Encoding.UTF8.GetBytes("{\"events\": [" + ev + new string(' ', (4 * 1024 * 1024) + 1 - ev.Length) + "]}");

        // A stream of unknown length is sent chunked, so only the server's running count can stop it.
        using var content = new StreamContent(new UnknownLengthStream(bytes));
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        var response = await hub.Client.PostAsync("/v1/events", content);

        await Api.AssertProblem(response, HttpStatusCode.RequestEntityTooLarge);
        Assert.Equal(0, await hub.OnHand("SKU-1", "WH1"));
    }

    [Fact]
    public async Task a_sequence_gap_is_reported_as_an_exception_without_blocking_the_events()
    {
        await using var hub = await HubServer.Start();
        await hub.Setup();

        Assert.Equal(["applied", "applied"], await hub.Events(
            Ev("received", 1).With("sourceSeq", 15),
            Ev("received", 1).With("sourceSeq", 17)));

        Assert.Equal(2, await hub.OnHand("SKU-1", "WH1"));
        var gaps = (await hub.GetJson("/v1/exceptions?type=sequence-gap")).GetProperty("items").EnumerateArray().ToArray();
        var gap = Assert.Single(gaps);
        Assert.Equal(1, gap.Long("quantity"));
        Assert.Contains("16", gap.Str("detail"), StringComparison.Ordinal);
        Assert.Equal("wms", gap.Str("source"));
    }

    /// <summary>A read-only stream that does not tell its length, so HttpClient sends it chunked.</summary>
    private sealed class UnknownLengthStream(byte[] data) : Stream
    {
        private readonly MemoryStream _inner = new(data);

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, count);
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _inner.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}
