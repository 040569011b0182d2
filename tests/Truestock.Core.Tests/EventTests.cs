namespace Truestock.Core.Tests;

/// <summary>The eleven event types, their failure side, clamps, exceptions and the count ordering rule.</summary>
public sealed class EventTests
{
    private readonly World _w = new();

    // ------------------------------------------------------------------ the eleven types

    [Fact]
    public void received_adds_to_on_hand()
    {
        var outcome = _w.Apply(EventType.Received, 5);

        Assert.Equal(EventStatus.Applied, outcome.Status);
        Assert.Null(outcome.ErrorType);
        Assert.Equal(5, _w.Pos().OnHand);
        Assert.Equal(5, _w.Pos().Available);
        Assert.Equal(5, _w.Shard.AvailableAt("A", "L1"));
    }

    [Fact]
    public void received_writes_a_ledger_row_with_the_quantities_after()
    {
        var e = _w.Event(EventType.Received, 5, at: _w.At(-3));
        _w.Now = _w.At(1);

        _w.Apply(e);

        var row = Assert.Single(_w.Fx.Ledger);
        Assert.Equal(("A", "L1", e.EventId, "received", 5L, "applied"), (row.Sku, row.LocationId, row.EventId, row.Type, row.Quantity, row.Status));
        Assert.Equal(e.OccurredAt, row.OccurredAt);
        Assert.Equal(_w.Now, row.RecordedAt);
        Assert.Equal(e.Source, row.Source);
        Assert.Equal(e.CorrelationId, row.CorrelationId);
        Assert.Equal(5, row.OnHandAfter);
        Assert.Equal(5, row.AvailableAfter);
        Assert.Empty(_w.Fx.Exceptions);
    }

    [Fact]
    public void sold_removes_from_on_hand()
    {
        _w.Stock(10);

        var outcome = _w.Apply(EventType.Sold, 3);

        Assert.Equal(EventStatus.Applied, outcome.Status);
        Assert.Equal(7, _w.Pos().OnHand);
        Assert.Equal(7, _w.Pos().Available);
    }

    [Fact]
    public void adjusted_adds_a_signed_quantity_to_on_hand()
    {
        Assert.Equal(EventStatus.Applied, _w.Apply(EventType.Adjusted, 7).Status);
        Assert.Equal(7, _w.Pos().OnHand);

        Assert.Equal(EventStatus.Applied, _w.Apply(EventType.Adjusted, -3).Status);
        Assert.Equal(4, _w.Pos().OnHand);
    }

    [Fact]
    public void counted_sets_on_hand_and_remembers_when_the_count_happened()
    {
        _w.Stock(10, at: _w.At(-10));

        var outcome = _w.Apply(EventType.Counted, 4, at: _w.At(-5));

        Assert.Equal(EventStatus.Applied, outcome.Status);
        Assert.Equal(4, _w.Pos().OnHand);
        Assert.Equal(_w.At(-5), _w.Pos().CountedAt);
    }

    [Fact]
    public void counted_zero_empties_the_position()
    {
        _w.Stock(10, at: _w.At(-10));

        _w.Apply(EventType.Counted, 0, at: _w.At(-5));

        Assert.Equal(0, _w.Pos().OnHand);
    }

    [Fact]
    public void damaged_grows_damaged_and_shrinks_available_but_not_on_hand()
    {
        _w.Stock(10);

        Assert.Equal(EventStatus.Applied, _w.Apply(EventType.Damaged, 3).Status);

        Assert.Equal(10, _w.Pos().OnHand);
        Assert.Equal(3, _w.Pos().Damaged);
        Assert.Equal(7, _w.Pos().Available);
    }

    [Fact]
    public void written_off_removes_damaged_units_from_on_hand()
    {
        _w.Stock(10);
        _w.Apply(EventType.Damaged, 3);

        Assert.Equal(EventStatus.Applied, _w.Apply(EventType.WrittenOff, 2).Status);

        Assert.Equal(8, _w.Pos().OnHand);
        Assert.Equal(1, _w.Pos().Damaged);
        Assert.Equal(7, _w.Pos().Available);
        Assert.Empty(_w.Fx.Exceptions);
    }

    [Fact]
    public void return_received_adds_units_that_wait_for_inspection()
    {
        _w.Stock(5);

        Assert.Equal(EventStatus.Applied, _w.Apply(EventType.ReturnReceived, 2).Status);

        Assert.Equal(7, _w.Pos().OnHand);
        Assert.Equal(2, _w.Pos().Inspection);
        Assert.Equal(5, _w.Pos().Available);
    }

    [Fact]
    public void inspected_restock_makes_the_returned_units_sellable()
    {
        _w.Stock(5);
        _w.Apply(EventType.ReturnReceived, 2);

        Assert.Equal(EventStatus.Applied, _w.Apply(EventType.Inspected, 2, disposition: Disposition.Restock).Status);

        Assert.Equal(7, _w.Pos().OnHand);
        Assert.Equal(0, _w.Pos().Inspection);
        Assert.Equal(0, _w.Pos().Damaged);
        Assert.Equal(7, _w.Pos().Available);
    }

    [Fact]
    public void inspected_damaged_moves_the_returned_units_to_damaged()
    {
        _w.Stock(5);
        _w.Apply(EventType.ReturnReceived, 2);

        _w.Apply(EventType.Inspected, 2, disposition: Disposition.Damaged);

        Assert.Equal(7, _w.Pos().OnHand);
        Assert.Equal(0, _w.Pos().Inspection);
        Assert.Equal(2, _w.Pos().Damaged);
        Assert.Equal(5, _w.Pos().Available);
    }

    [Fact]
    public void inspected_scrap_removes_the_returned_units_from_on_hand()
    {
        _w.Stock(5);
        _w.Apply(EventType.ReturnReceived, 2);

        _w.Apply(EventType.Inspected, 2, disposition: Disposition.Scrap);

        Assert.Equal(5, _w.Pos().OnHand);
        Assert.Equal(0, _w.Pos().Inspection);
        Assert.Equal(0, _w.Pos().Damaged);
        Assert.Equal(5, _w.Pos().Available);
        Assert.Empty(_w.Fx.Exceptions);
    }

    [Fact]
    public void transfer_shipped_moves_units_from_on_hand_here_to_incoming_at_the_destination()
    {
        _w.Stock(10);
        _w.Fx.Clear();

        var e = _w.Event(EventType.TransferShipped, 4, to: "L2");
        Assert.Equal(EventStatus.Applied, _w.Apply(e).Status);

        Assert.Equal(6, _w.Pos().OnHand);
        Assert.Equal(0, _w.Pos().Incoming);
        var destination = _w.Pos("A", "L2");
        Assert.Equal(4, destination.Incoming);
        Assert.Equal(0, destination.OnHand);
        Assert.Equal(0, destination.Available);
        Assert.Equal(2, _w.Fx.Ledger.Count);
        Assert.Contains(_w.Fx.Ledger, r => r.LocationId == "L2" && r.EventId == e.EventId && r.Type == "transfer_shipped");
        Assert.Contains(_w.Fx.Ledger, r => r.LocationId == "L1" && r.EventId == e.EventId && r.OnHandAfter == 6);
    }

    [Fact]
    public void transfer_received_turns_incoming_into_on_hand()
    {
        _w.Stock(10);
        _w.Apply(EventType.TransferShipped, 4, to: "L2");

        Assert.Equal(EventStatus.Applied, _w.Apply(EventType.TransferReceived, 4, location: "L2").Status);

        Assert.Equal(0, _w.Pos("A", "L2").Incoming);
        Assert.Equal(4, _w.Pos("A", "L2").OnHand);
        Assert.Equal(4, _w.Pos("A", "L2").Available);
        Assert.Empty(_w.Fx.Exceptions);
    }

    [Fact]
    public void transfer_received_partially_leaves_the_rest_incoming()
    {
        _w.Stock(10);
        _w.Apply(EventType.TransferShipped, 4, to: "L2");

        _w.Apply(EventType.TransferReceived, 1, location: "L2");

        Assert.Equal(3, _w.Pos("A", "L2").Incoming);
        Assert.Equal(1, _w.Pos("A", "L2").OnHand);
    }

    [Fact]
    public void transfer_received_beyond_incoming_takes_incoming_only_down_to_zero()
    {
        _w.Stock(10);
        _w.Apply(EventType.TransferShipped, 4, to: "L2");

        _w.Apply(EventType.TransferReceived, 6, location: "L2");

        Assert.Equal(0, _w.Pos("A", "L2").Incoming);
        Assert.Equal(6, _w.Pos("A", "L2").OnHand);
    }

    /// <summary>
    /// The model: "Quantities that would go below zero for damaged, inspection, allocated or
    /// incoming are clamped at zero and the clamp is recorded as an exception."
    /// </summary>
    [Fact]
    public void transfer_received_beyond_incoming_records_the_incoming_clamp_as_an_exception()
    {
        _w.Stock(10);
        _w.Apply(EventType.TransferShipped, 4, to: "L2");
        _w.Fx.Clear();

        var e = _w.Event(EventType.TransferReceived, 6, location: "L2");
        _w.Apply(e);

        var clamp = Assert.Single(_w.Raised(ExceptionTypes.Clamp));
        Assert.Equal(("A", "L2", e.EventId, 2L), (clamp.Sku, clamp.LocationId, clamp.EventId, clamp.Quantity));
    }

    [Fact]
    public void shipped_without_reservation_is_a_sale()
    {
        _w.Stock(10);

        Assert.Equal(EventStatus.Applied, _w.Apply(EventType.Shipped, 3).Status);

        Assert.Equal(7, _w.Pos().OnHand);
        Assert.Equal(7, _w.Pos().Available);
        Assert.Equal(0, _w.Pos().Allocated);
    }

    [Fact]
    public void shipped_with_reservation_takes_the_allocated_units_out_of_on_hand()
    {
        _w.Stock(10);
        _w.Order("r1", "web", World.Line("A", 4, "L1"));
        Assert.Equal(4, _w.Pos().Allocated);
        Assert.Equal(6, _w.Pos().Available);

        var outcome = _w.Apply(EventType.Shipped, 4, reservationId: "r1");

        Assert.Equal(EventStatus.Applied, outcome.Status);
        Assert.Equal(6, _w.Pos().OnHand);
        Assert.Equal(0, _w.Pos().Allocated);
        Assert.Equal(6, _w.Pos().Available);
        Assert.Equal(4, _w.Shard.FindReservation("r1")!.Lines[0].Shipped);
        Assert.Equal(ReservationStatus.Fulfilled, _w.Shard.FindReservation("r1")!.Status);
        Assert.Empty(_w.Fx.Exceptions);
        Assert.Contains(_w.Fx.Ledger, r => r.Type == "shipped" && r.ReservationId == "r1");
    }

    [Fact]
    public void shipped_partially_keeps_the_reservation_committed()
    {
        _w.Stock(10);
        _w.Order("r1", "web", World.Line("A", 4, "L1"));

        _w.Apply(EventType.Shipped, 1, reservationId: "r1");

        Assert.Equal(9, _w.Pos().OnHand);
        Assert.Equal(3, _w.Pos().Allocated);
        Assert.Equal(6, _w.Pos().Available);
        Assert.Equal(ReservationStatus.Committed, _w.Shard.FindReservation("r1")!.Status);
        Assert.Null(_w.Shard.FindReservation("r1")!.EndedAt);
    }

    [Fact]
    public void shipped_beyond_the_line_reduces_allocated_only_by_the_line_and_raises_a_clamp()
    {
        _w.Stock(10);
        _w.Order("r1", "web", World.Line("A", 4, "L1"));
        _w.Order("r2", "web", World.Line("A", 2, "L1"));
        _w.Fx.Clear();

        var e = _w.Event(EventType.Shipped, 6, reservationId: "r1");
        Assert.Equal(EventStatus.Applied, _w.Apply(e).Status);

        Assert.Equal(4, _w.Pos().OnHand);
        Assert.Equal(2, _w.Pos().Allocated); // r2's units stay allocated
        Assert.Equal(ReservationStatus.Fulfilled, _w.Shard.FindReservation("r1")!.Status);
        var clamp = Assert.Single(_w.Raised(ExceptionTypes.Clamp));
        Assert.Equal(("A", "L1", e.EventId, "r1", 2L), (clamp.Sku, clamp.LocationId, clamp.EventId, clamp.ReservationId, clamp.Quantity));
    }

    [Fact]
    public void shipped_again_after_fulfilment_is_an_over_shipment_clamp_that_still_moves_on_hand()
    {
        _w.Stock(10);
        _w.Order("r1", "web", World.Line("A", 4, "L1"));
        _w.Apply(EventType.Shipped, 4, reservationId: "r1");
        _w.Fx.Clear();

        var outcome = _w.Apply(EventType.Shipped, 1, reservationId: "r1");

        Assert.Equal(EventStatus.Applied, outcome.Status);
        Assert.Equal(5, _w.Pos().OnHand);
        Assert.Equal(0, _w.Pos().Allocated);
        Assert.Equal(ReservationStatus.Fulfilled, _w.Shard.FindReservation("r1")!.Status);
        Assert.Equal(1, Assert.Single(_w.Raised(ExceptionTypes.Clamp)).Quantity);
    }

    [Fact]
    public void shipping_an_order_with_two_lines_of_the_same_sku_in_one_event_ships_both_lines()
    {
        _w.Stock(10);
        // Both lines are sourced from L1: one order, two lines of the same SKU at the same location.
        _w.Order("r1", "web", World.Line("A", 3), World.Line("A", 2));
        Assert.Equal(5, _w.Pos().Allocated);
        _w.Fx.Clear();

        _w.Apply(EventType.Shipped, 5, reservationId: "r1");

        Assert.Equal(5, _w.Pos().OnHand);
        Assert.Equal(0, _w.Pos().Allocated);
        Assert.Equal(5, _w.Pos().Available);
        Assert.Equal(ReservationStatus.Fulfilled, _w.Shard.FindReservation("r1")!.Status);
        Assert.Empty(_w.Raised(ExceptionTypes.Clamp));
    }

    [Fact]
    public void shipped_against_two_lines_of_the_same_sku_one_event_per_line_fulfils_the_order()
    {
        _w.Stock(10);
        _w.Order("r1", "web", World.Line("A", 3), World.Line("A", 2));

        _w.Apply(EventType.Shipped, 3, reservationId: "r1");
        Assert.Equal(ReservationStatus.Committed, _w.Shard.FindReservation("r1")!.Status);
        _w.Apply(EventType.Shipped, 2, reservationId: "r1");

        Assert.Equal(0, _w.Pos().Allocated);
        Assert.Equal(5, _w.Pos().OnHand);
        Assert.Equal(ReservationStatus.Fulfilled, _w.Shard.FindReservation("r1")!.Status);
        Assert.Empty(_w.Fx.Exceptions);
    }

    // ------------------------------------------------------------------ rejections

    [Fact]
    public void shipped_against_an_unknown_reservation_is_rejected_and_changes_nothing()
    {
        _w.Stock(10);
        var before = _w.State();

        var outcome = _w.Apply(EventType.Shipped, 1, reservationId: "nope");

        Assert.Equal(EventStatus.Rejected, outcome.Status);
        Assert.Equal(RejectionTypes.UnknownReservation, outcome.ErrorType);
        Assert.Contains("nope", outcome.ErrorDetail, StringComparison.Ordinal);
        Assert.Equal(before, _w.State());
    }

    [Fact]
    public void shipped_against_a_held_reservation_is_rejected_as_not_committed()
    {
        _w.Stock(10);
        _w.Reserve("r1", "web", World.Line("A", 4, "L1"));
        var before = _w.State();

        var outcome = _w.Apply(EventType.Shipped, 4, reservationId: "r1");

        Assert.Equal(EventStatus.Rejected, outcome.Status);
        Assert.Equal(RejectionTypes.ReservationNotCommitted, outcome.ErrorType);
        Assert.Equal(before, _w.State());
    }

    [Fact]
    public void shipped_against_a_released_reservation_is_rejected_as_not_committed()
    {
        _w.Stock(10);
        _w.Order("r1", "web", World.Line("A", 4, "L1"));
        _w.Release("r1");

        var outcome = _w.Apply(EventType.Shipped, 4, reservationId: "r1");

        Assert.Equal(EventStatus.Rejected, outcome.Status);
        Assert.Equal(RejectionTypes.ReservationNotCommitted, outcome.ErrorType);
        Assert.Equal(10, _w.Pos().OnHand);
    }

    [Fact]
    public void shipped_for_a_sku_or_location_the_reservation_has_no_line_for_is_rejected()
    {
        _w.Stock(10);
        _w.Stock(10, sku: "B");
        _w.Stock(10, location: "L2");
        _w.Order("r1", "web", World.Line("A", 4, "L1"));
        var before = _w.State();

        var otherSku = _w.Apply(EventType.Shipped, 1, sku: "B", reservationId: "r1");
        var otherLocation = _w.Apply(EventType.Shipped, 1, location: "L2", reservationId: "r1");

        Assert.Equal((EventStatus.Rejected, RejectionTypes.ReservationLineNotFound), (otherSku.Status, otherSku.ErrorType));
        Assert.Equal((EventStatus.Rejected, RejectionTypes.ReservationLineNotFound), (otherLocation.Status, otherLocation.ErrorType));
        Assert.Equal(before, _w.State());
    }

    [Fact]
    public void event_at_an_unknown_location_is_rejected_and_creates_no_position()
    {
        var e = _w.Event(EventType.Received, 5, location: "nowhere");

        var outcome = _w.Apply(e);

        Assert.Equal(EventStatus.Rejected, outcome.Status);
        Assert.Equal(RejectionTypes.UnknownLocation, outcome.ErrorType);
        Assert.True(outcome.Journaled); // a rejected event is still journaled (its ledger row)
        Assert.Null(_w.Shard.FindPosition("A", "nowhere"));
        Assert.Equal(0, _w.Shard.PositionCount);
        Assert.Equal(0, _w.Shard.RememberedEventCount);
        var row = Assert.Single(_w.Fx.Ledger);
        Assert.Equal(("rejected", e.EventId, 0L), (row.Status, row.EventId, row.OnHandAfter));
    }

    [Fact]
    public void transfer_to_an_unknown_destination_is_rejected_and_changes_nothing()
    {
        _w.Stock(10);
        var before = _w.State();

        var outcome = _w.Apply(EventType.TransferShipped, 4, to: "nowhere");

        Assert.Equal(EventStatus.Rejected, outcome.Status);
        Assert.Equal(RejectionTypes.UnknownLocation, outcome.ErrorType);
        Assert.Contains("nowhere", outcome.ErrorDetail, StringComparison.Ordinal);
        Assert.Equal(before, _w.State());
    }

    [Fact]
    public void transfer_without_a_destination_is_rejected()
    {
        _w.Stock(10);

        var outcome = _w.Apply(EventType.TransferShipped, 4, to: null);

        Assert.Equal((EventStatus.Rejected, RejectionTypes.UnknownLocation), (outcome.Status, outcome.ErrorType));
        Assert.Equal(10, _w.Pos().OnHand);
    }

    [Fact]
    public void rejected_event_is_not_remembered_and_can_be_retried_later()
    {
        var e = _w.Event(EventType.Received, 5, location: "L9");
        Assert.Equal(EventStatus.Rejected, _w.Apply(e).Status);

        _w.Shard.PutLocation(new Location("L9", "New store", LocationType.Store));
        var retry = _w.Apply(e);

        Assert.Equal(EventStatus.Applied, retry.Status);
        Assert.Equal(5, _w.Pos("A", "L9").OnHand);
        Assert.Equal(EventStatus.Duplicate, _w.Apply(e).Status);
    }

    [Fact]
    public void shipment_rejected_before_commit_can_be_retried_after_commit()
    {
        _w.Stock(10);
        _w.Reserve("r1", "web", World.Line("A", 4, "L1"));
        var e = _w.Event(EventType.Shipped, 4, reservationId: "r1");
        Assert.Equal(EventStatus.Rejected, _w.Apply(e).Status);

        _w.Commit("r1");

        Assert.Equal(EventStatus.Applied, _w.Apply(e).Status);
        Assert.Equal(6, _w.Pos().OnHand);
        Assert.Equal(ReservationStatus.Fulfilled, _w.Shard.FindReservation("r1")!.Status);
    }

    // ------------------------------------------------------------------ idempotency

    [Fact]
    public void resent_event_with_the_same_content_is_a_duplicate_and_changes_nothing()
    {
        var e = _w.Event(EventType.Received, 5, seq: 1, source: "pos-1");
        _w.Apply(e);
        var before = _w.State();
        _w.Fx.Clear();

        var outcome = _w.Apply(e);

        Assert.Equal(EventStatus.Duplicate, outcome.Status);
        Assert.False(outcome.Journaled);
        Assert.Equal(5, _w.Pos().OnHand);
        Assert.Equal(before, _w.State());
        Assert.Empty(_w.Fx.Ledger);
        Assert.Empty(_w.Fx.Exceptions);
    }

    [Fact]
    public void duplicate_is_decided_by_the_fingerprint_not_by_the_fields()
    {
        var e = _w.Event(EventType.Received, 5);
        _w.Apply(e);

        // The host digests the content; the engine trusts the digest.
        var outcome = _w.Apply(e with { CorrelationId = "another-correlation" });

        Assert.Equal(EventStatus.Duplicate, outcome.Status);
        Assert.Equal(5, _w.Pos().OnHand);
    }

    [Fact]
    public void reused_event_id_with_different_content_is_an_idempotency_conflict()
    {
        var e = _w.Event(EventType.Received, 5);
        _w.Apply(e);
        var before = _w.State();
        _w.Fx.Clear();

        var outcome = _w.Apply(e with { Quantity = 50, Fingerprint = new Fingerprint(1, 2) });

        Assert.Equal(EventStatus.Rejected, outcome.Status);
        Assert.Equal(RejectionTypes.IdempotencyConflict, outcome.ErrorType);
        Assert.Contains(e.EventId, outcome.ErrorDetail, StringComparison.Ordinal);
        Assert.Equal(before, _w.State());
        Assert.Equal("rejected", Assert.Single(_w.Fx.Ledger).Status);
    }

    [Fact]
    public void conflict_does_not_replace_the_remembered_content()
    {
        var e = _w.Event(EventType.Received, 5);
        _w.Apply(e);
        _w.Apply(e with { Fingerprint = new Fingerprint(1, 2) });

        Assert.Equal(EventStatus.Duplicate, _w.Apply(e).Status);
        Assert.Equal(5, _w.Pos().OnHand);
    }

    [Fact]
    public void conflict_is_detected_before_the_location_is_checked()
    {
        var e = _w.Event(EventType.Received, 5);
        _w.Apply(e);

        var outcome = _w.Apply(e with { LocationId = "nowhere", Fingerprint = new Fingerprint(3, 4) });

        Assert.Equal(RejectionTypes.IdempotencyConflict, outcome.ErrorType);
    }

    [Fact]
    public void stale_count_is_remembered_so_a_resend_is_a_duplicate()
    {
        _w.Apply(EventType.Counted, 10, at: _w.At(-1));
        var stale = _w.Event(EventType.Counted, 3, at: _w.At(-5));
        Assert.Equal(EventStatus.Stale, _w.Apply(stale).Status);

        Assert.Equal(EventStatus.Duplicate, _w.Apply(stale).Status);
        Assert.Equal(10, _w.Pos().OnHand);
    }

    // ------------------------------------------------------------------ clamps

    [Fact]
    public void written_off_beyond_damaged_clamps_damaged_at_zero_and_raises_a_clamp()
    {
        _w.Stock(10);
        _w.Apply(EventType.Damaged, 1);
        var e = _w.Event(EventType.WrittenOff, 3);

        _w.Apply(e);

        Assert.Equal(0, _w.Pos().Damaged);
        Assert.Equal(7, _w.Pos().OnHand);
        var clamp = Assert.Single(_w.Raised(ExceptionTypes.Clamp));
        Assert.Equal(("A", "L1", e.EventId, e.Source, 2L), (clamp.Sku, clamp.LocationId, clamp.EventId, clamp.Source, clamp.Quantity));
        Assert.Contains("damaged", clamp.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void inspected_beyond_inspection_clamps_inspection_at_zero_and_raises_a_clamp()
    {
        _w.Stock(10);
        _w.Apply(EventType.ReturnReceived, 1);

        _w.Apply(EventType.Inspected, 4, disposition: Disposition.Restock);

        Assert.Equal(0, _w.Pos().Inspection);
        Assert.Equal(11, _w.Pos().OnHand);
        var clamp = Assert.Single(_w.Raised(ExceptionTypes.Clamp));
        Assert.Equal(3, clamp.Quantity);
        Assert.Contains("inspection", clamp.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void damaged_beyond_on_hand_is_clamped_to_on_hand()
    {
        _w.Stock(3);

        _w.Apply(EventType.Damaged, 5);

        Assert.Equal(3, _w.Pos().Damaged);
        Assert.Equal(0, _w.Pos().Available);
        Assert.Equal(2, Assert.Single(_w.Raised(ExceptionTypes.Clamp)).Quantity);
    }

    [Fact]
    public void damaged_on_an_empty_position_is_clamped_to_zero()
    {
        _w.Apply(EventType.Damaged, 2);

        Assert.Equal(0, _w.Pos().Damaged);
        Assert.Equal(0, _w.Pos().OnHand);
        Assert.Equal(2, Assert.Single(_w.Raised(ExceptionTypes.Clamp)).Quantity);
    }

    [Fact]
    public void sale_below_damaged_plus_inspection_clamps_damaged_first()
    {
        _w.Stock(10);
        _w.Apply(EventType.Damaged, 3);
        _w.Apply(EventType.ReturnReceived, 2); // onHand 12, damaged 3, inspection 2
        _w.Fx.Clear();

        _w.Apply(EventType.Sold, 9); // onHand 3: damaged + inspection (5) must shrink by 2

        Assert.Equal(3, _w.Pos().OnHand);
        Assert.Equal(1, _w.Pos().Damaged);
        Assert.Equal(2, _w.Pos().Inspection);
        Assert.Equal(2, Assert.Single(_w.Raised(ExceptionTypes.Clamp)).Quantity);
        Assert.Equal(0, _w.Pos().Available);
        Assert.Empty(_w.Raised(ExceptionTypes.Oversell));
    }

    [Fact]
    public void superseded_return_beyond_on_hand_clamps_the_inspection_it_grew_first()
    {
        _w.Stock(10, at: _w.At(-20));
        _w.Apply(EventType.Damaged, 2, at: _w.At(-19));
        _w.Apply(EventType.Counted, 5, at: _w.At(-10)); // onHand 5, damaged 2
        _w.Fx.Clear();

        var outcome = _w.Apply(EventType.ReturnReceived, 5, at: _w.At(-15)); // inside the count: inspection only

        Assert.Equal(EventStatus.Superseded, outcome.Status);
        Assert.Equal(5, _w.Pos().OnHand);
        Assert.Equal(2, _w.Pos().Damaged);
        Assert.Equal(3, _w.Pos().Inspection);
        Assert.Equal(2, Assert.Single(_w.Raised(ExceptionTypes.Clamp)).Quantity);
    }

    [Fact]
    public void count_below_damaged_plus_inspection_clamps_them_to_the_count()
    {
        _w.Stock(10, at: _w.At(-20));
        _w.Apply(EventType.Damaged, 4, at: _w.At(-19));
        _w.Apply(EventType.ReturnReceived, 2, at: _w.At(-18)); // onHand 12, damaged 4, inspection 2
        _w.Fx.Clear();

        _w.Apply(EventType.Counted, 3, at: _w.At(-10));

        Assert.Equal(3, _w.Pos().OnHand);
        Assert.Equal(1, _w.Pos().Damaged); // damaged shrinks first
        Assert.Equal(2, _w.Pos().Inspection);
        Assert.Equal(3, Assert.Single(_w.Raised(ExceptionTypes.Clamp)).Quantity);
    }

    // ------------------------------------------------------------------ negative onHand and oversell

    [Fact]
    public void sale_beyond_on_hand_raises_negative_on_hand_and_oversell()
    {
        _w.Stock(3);
        var e = _w.Event(EventType.Sold, 5);

        Assert.Equal(EventStatus.Applied, _w.Apply(e).Status);

        Assert.Equal(-2, _w.Pos().OnHand);
        Assert.Equal(-2, _w.Pos().Available);
        var negative = Assert.Single(_w.Raised(ExceptionTypes.NegativeOnHand));
        Assert.Equal(("A", "L1", e.EventId, 2L), (negative.Sku, negative.LocationId, negative.EventId, negative.Quantity));
        var oversell = Assert.Single(_w.Raised(ExceptionTypes.Oversell));
        Assert.Equal(2, oversell.Quantity);
        Assert.Equal(_w.Now, oversell.RecordedAt);
    }

    [Fact]
    public void pos_sale_of_reserved_units_raises_oversell_without_negative_on_hand()
    {
        _w.Stock(10);
        _w.Reserve("r1", "web", World.Line("A", 8, "L1"));

        _w.Apply(EventType.Sold, 5);

        Assert.Equal(5, _w.Pos().OnHand);
        Assert.Equal(-3, _w.Pos().Available);
        Assert.Equal(3, Assert.Single(_w.Raised(ExceptionTypes.Oversell)).Quantity);
        Assert.Empty(_w.Raised(ExceptionTypes.NegativeOnHand));
    }

    [Fact]
    public void damage_of_reserved_units_raises_oversell()
    {
        _w.Stock(5);
        _w.Reserve("r1", "web", World.Line("A", 4, "L1"));

        _w.Apply(EventType.Damaged, 3);

        Assert.Equal(-2, _w.Pos().Available);
        Assert.Equal(2, Assert.Single(_w.Raised(ExceptionTypes.Oversell)).Quantity);
    }

    [Fact]
    public void count_that_finds_less_than_is_reserved_raises_oversell()
    {
        _w.Stock(10, at: _w.At(-10));
        _w.Reserve("r1", "web", World.Line("A", 6, "L1"));

        _w.Apply(EventType.Counted, 4, at: _w.At(-1));

        Assert.Equal(-2, _w.Pos().Available);
        Assert.Equal(2, Assert.Single(_w.Raised(ExceptionTypes.Oversell)).Quantity);
    }

    [Fact]
    public void further_sale_while_oversold_raises_oversell_again_with_the_new_depth()
    {
        _w.Stock(1);
        _w.Apply(EventType.Sold, 3);
        _w.Fx.Clear();

        _w.Apply(EventType.Sold, 1);

        Assert.Equal(3, Assert.Single(_w.Raised(ExceptionTypes.Oversell)).Quantity);
        Assert.Equal(3, Assert.Single(_w.Raised(ExceptionTypes.NegativeOnHand)).Quantity);
    }

    [Fact]
    public void receipt_while_oversold_raises_nothing()
    {
        _w.Stock(1);
        _w.Apply(EventType.Sold, 3);
        _w.Fx.Clear();

        _w.Apply(EventType.Received, 1);

        Assert.Equal(-1, _w.Pos().OnHand);
        Assert.Empty(_w.Fx.Exceptions);
    }

    // ------------------------------------------------------------------ sequence gaps

    [Fact]
    public void sequence_gap_is_raised_naming_the_missing_numbers()
    {
        _w.Apply(EventType.Received, 1, seq: 15, source: "store-7");
        var e = _w.Event(EventType.Received, 1, seq: 19, source: "store-7");

        var outcome = _w.Apply(e);

        Assert.Equal(EventStatus.Applied, outcome.Status); // a gap does not block processing
        Assert.Equal(2, _w.Pos().OnHand);
        var gap = Assert.Single(_w.Raised(ExceptionTypes.SequenceGap));
        Assert.Equal(("store-7", e.EventId, 3L), (gap.Source, gap.EventId, gap.Quantity));
        Assert.Contains("16, 17, 18", gap.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain("15", gap.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain("19", gap.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void consecutive_sequence_numbers_raise_no_gap()
    {
        _w.Apply(EventType.Received, 1, seq: 1, source: "s");
        _w.Apply(EventType.Received, 1, seq: 2, source: "s");
        _w.Apply(EventType.Received, 1, seq: 3, source: "s");

        Assert.Empty(_w.Fx.Exceptions);
    }

    [Fact]
    public void first_sequence_number_of_a_source_raises_no_gap()
    {
        _w.Apply(EventType.Received, 1, seq: 500, source: "s");

        Assert.Empty(_w.Fx.Exceptions);
    }

    [Fact]
    public void late_number_that_fills_a_gap_raises_nothing_and_does_not_move_the_sequence_back()
    {
        _w.Apply(EventType.Received, 1, seq: 15, source: "s");
        _w.Apply(EventType.Received, 1, seq: 17, source: "s");
        _w.Fx.Clear();

        _w.Apply(EventType.Received, 1, seq: 16, source: "s");
        _w.Apply(EventType.Received, 1, seq: 18, source: "s");

        Assert.Empty(_w.Fx.Exceptions);
        Assert.Equal(18, _w.Shard.Export().SourceSequences["s"]);
    }

    [Fact]
    public void long_gap_lists_the_first_twenty_missing_numbers_and_counts_the_rest()
    {
        _w.Apply(EventType.Received, 1, seq: 1, source: "s");

        _w.Apply(EventType.Received, 1, seq: 30, source: "s");

        var gap = Assert.Single(_w.Raised(ExceptionTypes.SequenceGap));
        Assert.Equal(28, gap.Quantity);
        Assert.Contains(string.Join(", ", Enumerable.Range(2, 20)), gap.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain("22,", gap.Detail, StringComparison.Ordinal);
        Assert.Contains("and 8 more (up to 29)", gap.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void sequence_numbers_are_followed_per_source()
    {
        _w.Apply(EventType.Received, 1, seq: 1, source: "a");
        _w.Apply(EventType.Received, 1, seq: 7, source: "b");
        _w.Apply(EventType.Received, 1, seq: 2, source: "a");
        _w.Apply(EventType.Received, 1, seq: 8, source: "b");

        Assert.Empty(_w.Fx.Exceptions);
    }

    [Fact]
    public void events_without_sequence_numbers_do_not_disturb_the_sequence()
    {
        _w.Apply(EventType.Received, 1, seq: 1, source: "a");
        _w.Apply(EventType.Received, 1, source: "a");
        _w.Apply(EventType.Received, 1, seq: 2, source: "a");

        Assert.Empty(_w.Fx.Exceptions);
    }

    [Fact]
    public void rejected_event_does_not_advance_the_sequence()
    {
        _w.Apply(EventType.Received, 1, seq: 1, source: "a");
        _w.Apply(EventType.Received, 1, location: "nowhere", seq: 2, source: "a");

        _w.Apply(EventType.Received, 1, seq: 3, source: "a");

        Assert.EndsWith("number(s): 2.", Assert.Single(_w.Raised(ExceptionTypes.SequenceGap)).Detail, StringComparison.Ordinal);
    }

    // ------------------------------------------------------------------ count ordering

    [Fact]
    public void count_at_the_same_time_as_the_latest_count_is_stale_and_changes_nothing()
    {
        _w.Apply(EventType.Counted, 10, at: _w.At(-5));
        _w.Fx.Clear();

        var outcome = _w.Apply(EventType.Counted, 3, at: _w.At(-5));

        Assert.Equal(EventStatus.Stale, outcome.Status);
        Assert.Equal(10, _w.Pos().OnHand);
        Assert.Equal(_w.At(-5), _w.Pos().CountedAt);
        Assert.Equal("stale", Assert.Single(_w.Fx.Ledger).Status);
    }

    [Fact]
    public void count_older_than_the_latest_count_is_stale_and_changes_nothing()
    {
        _w.Apply(EventType.Counted, 10, at: _w.At(-5));

        var outcome = _w.Apply(EventType.Counted, 3, at: _w.At(-30));

        Assert.Equal(EventStatus.Stale, outcome.Status);
        Assert.Equal(10, _w.Pos().OnHand);
        Assert.Equal(_w.At(-5), _w.Pos().CountedAt);
    }

    [Fact]
    public void newer_count_replaces_the_latest_count()
    {
        _w.Apply(EventType.Counted, 10, at: _w.At(-30));

        var outcome = _w.Apply(EventType.Counted, 3, at: _w.At(-5));

        Assert.Equal(EventStatus.Applied, outcome.Status);
        Assert.Equal(3, _w.Pos().OnHand);
        Assert.Equal(_w.At(-5), _w.Pos().CountedAt);
    }

    [Fact]
    public void movement_that_happened_before_the_count_is_superseded_and_leaves_on_hand()
    {
        _w.Apply(EventType.Counted, 10, at: _w.At(-5));
        _w.Fx.Clear();

        var sold = _w.Apply(EventType.Sold, 3, at: _w.At(-6));
        var received = _w.Apply(EventType.Received, 3, at: _w.At(-5)); // at the count's time: inside it

        Assert.Equal(EventStatus.Superseded, sold.Status);
        Assert.Equal(EventStatus.Superseded, received.Status);
        Assert.Equal(10, _w.Pos().OnHand);
        Assert.All(_w.Fx.Ledger, r => Assert.Equal("superseded", r.Status));
        Assert.Empty(_w.Fx.Exceptions);
    }

    [Fact]
    public void movement_that_happened_after_the_count_applies_even_when_it_arrives_late()
    {
        _w.Apply(EventType.Counted, 10, at: _w.At(-5));

        var outcome = _w.Apply(EventType.Sold, 3, at: _w.At(-4));

        Assert.Equal(EventStatus.Applied, outcome.Status);
        Assert.Equal(7, _w.Pos().OnHand);
    }

    [Fact]
    public void superseded_damage_still_marks_the_units_damaged()
    {
        _w.Apply(EventType.Counted, 10, at: _w.At(-5));

        var outcome = _w.Apply(EventType.Damaged, 2, at: _w.At(-6));

        Assert.Equal(EventStatus.Superseded, outcome.Status);
        Assert.Equal(2, _w.Pos().Damaged);
        Assert.Equal(10, _w.Pos().OnHand);
    }

    [Fact]
    public void superseded_write_off_reduces_damaged_but_not_on_hand()
    {
        _w.Stock(10, at: _w.At(-20));
        _w.Apply(EventType.Damaged, 2, at: _w.At(-19));
        _w.Apply(EventType.Counted, 8, at: _w.At(-5));

        var outcome = _w.Apply(EventType.WrittenOff, 2, at: _w.At(-10));

        Assert.Equal(EventStatus.Superseded, outcome.Status);
        Assert.Equal(0, _w.Pos().Damaged);
        Assert.Equal(8, _w.Pos().OnHand);
    }

    [Fact]
    public void late_count_adds_back_the_movements_that_happened_after_it()
    {
        _w.Stock(5, at: _w.At(-10));
        _w.Apply(EventType.Sold, 2, at: _w.At(-8));
        _w.Apply(EventType.Adjusted, 4, at: _w.At(-2));
        Assert.Equal(7, _w.Pos().OnHand);

        // Counted at -9 but uploaded only now: 20 then, +(-2) +4 since.
        var outcome = _w.Apply(EventType.Counted, 20, at: _w.At(-9));

        Assert.Equal(EventStatus.Applied, outcome.Status);
        Assert.Equal(22, _w.Pos().OnHand);
        Assert.Equal(_w.At(-9), _w.Pos().CountedAt);
    }

    [Fact]
    public void late_count_drops_the_movements_it_contains_so_a_later_count_does_not_add_them_back()
    {
        _w.Stock(5, at: _w.At(-10));
        _w.Apply(EventType.Sold, 2, at: _w.At(-8));
        _w.Apply(EventType.Adjusted, 4, at: _w.At(-2));
        _w.Apply(EventType.Counted, 20, at: _w.At(-9)); // 22
        _w.Apply(EventType.Received, 1, at: _w.At(-7)); // after the count: 23

        // Counted at -3: contains -8 and -7, not -2.
        _w.Apply(EventType.Counted, 30, at: _w.At(-3));

        Assert.Equal(34, _w.Pos().OnHand);
    }

    [Fact]
    public void late_count_adds_back_movements_of_every_onhand_changing_type()
    {
        _w.Stock(10, location: "L1", at: _w.At(-60));
        _w.Stock(10, location: "L2", at: _w.At(-60));
        _w.Apply(EventType.TransferShipped, 3, location: "L2", to: "L1", at: _w.At(-59));
        _w.Apply(EventType.Damaged, 2, at: _w.At(-58));
        _w.Apply(EventType.Received, 5, at: _w.At(-9));
        _w.Apply(EventType.Sold, 1, at: _w.At(-8));
        _w.Apply(EventType.Adjusted, -1, at: _w.At(-7));
        _w.Apply(EventType.WrittenOff, 1, at: _w.At(-6));
        _w.Apply(EventType.ReturnReceived, 2, at: _w.At(-5));
        _w.Apply(EventType.Inspected, 1, disposition: Disposition.Scrap, at: _w.At(-4));
        _w.Apply(EventType.TransferShipped, 2, to: "L2", at: _w.At(-3));
        _w.Apply(EventType.TransferReceived, 3, at: _w.At(-2));
        _w.Apply(EventType.Shipped, 1, at: _w.At(-1));

        _w.Apply(EventType.Counted, 100, at: _w.At(-10));

        // +5 -1 -1 -1 +2 -1 -2 +3 -1 = +3
        Assert.Equal(103, _w.Pos().OnHand);
    }

    [Fact]
    public void superseded_transfer_shipped_still_moves_incoming_to_the_destination()
    {
        _w.Stock(10, at: _w.At(-30));
        _w.Apply(EventType.Counted, 6, at: _w.At(-5));
        _w.Fx.Clear();

        var outcome = _w.Apply(EventType.TransferShipped, 4, to: "L2", at: _w.At(-10));

        Assert.Equal(EventStatus.Superseded, outcome.Status);
        Assert.Equal(6, _w.Pos().OnHand);
        Assert.Equal(4, _w.Pos("A", "L2").Incoming);
    }

    [Fact]
    public void superseded_transfer_received_still_reduces_incoming()
    {
        _w.Stock(10, location: "L2", at: _w.At(-60));
        _w.Apply(EventType.TransferShipped, 4, location: "L2", to: "L1", at: _w.At(-50));
        _w.Apply(EventType.Counted, 4, at: _w.At(-5)); // the count found the transferred units

        var outcome = _w.Apply(EventType.TransferReceived, 4, at: _w.At(-10));

        Assert.Equal(EventStatus.Superseded, outcome.Status);
        Assert.Equal(0, _w.Pos().Incoming);
        Assert.Equal(4, _w.Pos().OnHand);
    }

    [Fact]
    public void superseded_shipment_still_releases_the_allocation()
    {
        _w.Stock(10, at: _w.At(-30));
        _w.Order("r1", "web", World.Line("A", 4, "L1"));
        _w.Apply(EventType.Counted, 6, at: _w.At(-5)); // counted after the parcel left

        var outcome = _w.Apply(EventType.Shipped, 4, reservationId: "r1", at: _w.At(-10));

        Assert.Equal(EventStatus.Superseded, outcome.Status);
        Assert.Equal(6, _w.Pos().OnHand);
        Assert.Equal(0, _w.Pos().Allocated);
        Assert.Equal(ReservationStatus.Fulfilled, _w.Shard.FindReservation("r1")!.Status);
    }

    [Fact]
    public void count_older_than_the_remembered_history_is_rejected_and_a_newer_count_is_accepted()
    {
        var start = _w.At(-10_000);
        for (var i = 0; i <= Limits.OnHandHistoryMax; i++)
        {
            _w.Stock(1, at: start.AddSeconds(i));
        }
        Assert.Equal(Limits.OnHandHistoryMax + 1, _w.Pos().OnHand);
        var before = _w.State();

        var tooOld = _w.Event(EventType.Counted, 0, at: start.AddSeconds(-1));
        var outcome = _w.Apply(tooOld);

        Assert.Equal(EventStatus.Rejected, outcome.Status);
        Assert.Equal(RejectionTypes.CountBeyondHistory, outcome.ErrorType);
        Assert.Equal(before, _w.State());

        // Counted just after the oldest (forgotten) movement: every later movement is still known.
        var newer = _w.Apply(EventType.Counted, 0, at: start.AddSeconds(0.5));
        Assert.Equal(EventStatus.Applied, newer.Status);
        Assert.Equal(Limits.OnHandHistoryMax, _w.Pos().OnHand);
    }

    [Fact]
    public void count_is_never_placed_before_a_forgotten_movement_even_after_an_old_movement_arrives()
    {
        // Fill the history, overflow it once (horizon = t1000), then let an old movement (t500)
        // enter and be evicted again. The horizon must not move back to t500: a count at t750
        // cannot be placed, because the movements at t1000 and t1001 are no longer remembered.
        var t = (int s) => World.T0.AddSeconds(s);
        for (var s = 1000; s < 1000 + Limits.OnHandHistoryMax; s++)
        {
            _w.Stock(1, at: t(s));
        }
        _w.Stock(1, at: t(1000 + Limits.OnHandHistoryMax));     // evicts t1000
        _w.Stock(1, at: t(500));                                // evicts t1001, remembered at the front
        _w.Stock(1, at: t(1001 + Limits.OnHandHistoryMax));     // evicts t500
        var movementsAfter750 = Limits.OnHandHistoryMax + 2;     // t1000 .. t1000+1025

        var outcome = _w.Apply(EventType.Counted, 0, at: t(750));

        Assert.True(
            (outcome.Status == EventStatus.Rejected && outcome.ErrorType == RejectionTypes.CountBeyondHistory)
            || _w.Pos().OnHand == movementsAfter750,
            $"count at t750 was {outcome.Status} and set onHand to {_w.Pos().OnHand}; the movements after t750 sum to {movementsAfter750}");
    }

    // ------------------------------------------------------------------ plumbing

    [Fact]
    public void effects_that_do_not_record_drop_rows_and_exceptions_but_the_state_still_changes()
    {
        var fx = new Effects { Recording = false };

        _w.Shard.ApplyEvent(_w.Event(EventType.Sold, 3), _w.Now, fx);

        Assert.Equal(-3, _w.Pos().OnHand);
        Assert.Empty(fx.Ledger);
        Assert.Empty(fx.Exceptions);
    }

    [Fact]
    public void effects_clear_empties_the_buffer()
    {
        _w.Apply(EventType.Sold, 3);
        Assert.NotEmpty(_w.Fx.Ledger);

        _w.Fx.Clear();

        Assert.Empty(_w.Fx.Ledger);
        Assert.Empty(_w.Fx.Exceptions);
    }

    [Theory]
    [InlineData(EventType.Received, "received")]
    [InlineData(EventType.Sold, "sold")]
    [InlineData(EventType.Adjusted, "adjusted")]
    [InlineData(EventType.Counted, "counted")]
    [InlineData(EventType.Damaged, "damaged")]
    [InlineData(EventType.WrittenOff, "written_off")]
    [InlineData(EventType.ReturnReceived, "return_received")]
    [InlineData(EventType.Inspected, "inspected")]
    [InlineData(EventType.TransferShipped, "transfer_shipped")]
    [InlineData(EventType.TransferReceived, "transfer_received")]
    [InlineData(EventType.Shipped, "shipped")]
    public void event_type_wire_names_round_trip(EventType type, string name)
    {
        Assert.Equal(name, Shard.TypeName(type));
        Assert.True(Shard.TryParseType(name, out var parsed));
        Assert.Equal(type, parsed);
    }

    [Fact]
    public void unknown_wire_type_does_not_parse()
    {
        Assert.False(Shard.TryParseType("Received", out _));
        Assert.False(Shard.TryParseType("teleported", out _));
    }

    [Fact]
    public void event_status_wire_names()
    {
        Assert.Equal(
            ["applied", "duplicate", "superseded", "stale", "rejected"],
            Enum.GetValues<EventStatus>().Select(Shard.StatusName).ToArray());
    }
}
