using static Truestock.Core.Tests.World;

namespace Truestock.Core.Tests;

/// <summary>Reservation life cycle, sourcing, channel availability and their failures.</summary>
public sealed class ReservationTests
{
    private readonly World _w = new();

    private static readonly TimeSpan Tick = TimeSpan.FromTicks(1);

    private void PutChannel(string id, string[] locations, int percent = 100, long buffer = 0, long? max = null) =>
        Assert.NotEqual(MasterDataResult.Rejected, _w.Shard.PutChannel(new Channel(id, id, locations, percent, buffer, max, null)).Result);

    // ------------------------------------------------------------------ create

    [Fact]
    public void reservation_holds_units_at_the_given_location()
    {
        _w.Stock(10, location: "L1");
        _w.Stock(10, location: "L2");
        _w.Fx.Clear();

        var outcome = _w.Reserve("r1", "web", Line("A", 4, "L2"));

        Assert.Equal(ReservationResult.Created, outcome.Result);
        Assert.True(outcome.Journaled);
        var r = outcome.Reservation!;
        Assert.Equal(("r1", "web", ReservationStatus.Held), (r.Id, r.ChannelId, r.Status));
        Assert.Equal(_w.Now, r.CreatedAt);
        Assert.Equal(_w.Now.AddSeconds(Limits.TtlSecondsDefault), r.ExpiresAt);
        Assert.Null(r.EndedAt);
        var line = Assert.Single(r.Lines);
        Assert.Equal(("A", 4L, "L2", 0L), (line.Sku, line.Quantity, line.LocationId, line.Shipped));
        Assert.Equal(4, _w.Pos("A", "L2").Reserved);
        Assert.Equal(6, _w.Pos("A", "L2").Available);
        Assert.Equal(0, _w.Pos("A", "L1").Reserved);
        var row = Assert.Single(_w.Fx.Ledger);
        Assert.Equal(("reservation_held", "r1", "L2", 4L, 6L), (row.Type, row.ReservationId, row.LocationId, row.Quantity, row.AvailableAfter));
        Assert.Same(r, _w.Shard.FindReservation("r1"));
    }

    [Fact]
    public void reservation_without_location_takes_from_the_first_sourcing_location()
    {
        _w.Stock(10, location: "L1");
        _w.Stock(10, location: "L2");

        var outcome = _w.Reserve("r1", "web", Line("A", 4));

        Assert.Equal("L1", Assert.Single(outcome.Reservation!.Lines).LocationId);
        Assert.Equal(4, _w.Pos("A", "L1").Reserved);
        Assert.Equal(0, _w.Pos("A", "L2").Reserved);
    }

    [Fact]
    public void sourcing_follows_the_order_of_the_channel_list()
    {
        PutChannel("warehouse-first", ["L2", "L1"]);
        _w.Stock(10, location: "L1");
        _w.Stock(10, location: "L2");

        var outcome = _w.Reserve("r1", "warehouse-first", Line("A", 4));

        Assert.Equal("L2", Assert.Single(outcome.Reservation!.Lines).LocationId);
    }

    [Fact]
    public void sourcing_skips_a_location_that_cannot_cover_the_whole_line()
    {
        _w.Stock(2, location: "L1");
        _w.Stock(10, location: "L2");

        var outcome = _w.Reserve("r1", "web", Line("A", 5));

        Assert.Equal("L2", Assert.Single(outcome.Reservation!.Lines).LocationId);
        Assert.Equal(0, _w.Pos("A", "L1").Reserved);
        Assert.Equal(5, _w.Pos("A", "L2").Reserved);
    }

    [Fact]
    public void lines_keep_the_order_of_the_request()
    {
        _w.Stock(10, sku: "B");
        _w.Stock(10, sku: "A", location: "L2");

        var r = _w.Reserve("r1", "web", Line("B", 1), Line("A", 2), Line("B", 3)).Reservation!;

        Assert.Equal(["B@L1:1", "A@L2:2", "B@L1:3"], r.Lines.Select(l => $"{l.Sku}@{l.LocationId}:{l.Quantity}").ToArray());
    }

    [Fact]
    public void reservation_is_rejected_when_stock_is_short()
    {
        _w.Stock(3, location: "L1");
        _w.Stock(2, location: "L2");
        var before = _w.State();
        _w.Fx.Clear();

        // ATS is 5 but no single location has 4: a line is never split.
        var outcome = _w.Reserve("r1", "web", Line("A", 4));

        Assert.Equal(ReservationResult.Insufficient, outcome.Result);
        Assert.False(outcome.Journaled);
        Assert.Null(outcome.Reservation);
        Assert.Equal([new Shortage("A", 4, 3)], outcome.Shortages!.ToArray());
        Assert.Null(_w.Shard.FindReservation("r1"));
        Assert.Equal(before, _w.State());
        Assert.Empty(_w.Fx.Ledger);
    }

    [Fact]
    public void reservation_of_an_unknown_sku_is_short_by_everything()
    {
        var outcome = _w.Reserve("r1", "web", Line("never-seen", 1));

        Assert.Equal(ReservationResult.Insufficient, outcome.Result);
        Assert.Equal([new Shortage("never-seen", 1, 0)], outcome.Shortages!.ToArray());
    }

    [Fact]
    public void reservation_is_all_or_nothing_across_lines()
    {
        _w.Stock(10, sku: "A");
        _w.Stock(1, sku: "B");
        var before = _w.State();

        var outcome = _w.Reserve("r1", "web", Line("A", 5), Line("B", 2));

        Assert.Equal(ReservationResult.Insufficient, outcome.Result);
        Assert.Equal([new Shortage("B", 2, 1)], outcome.Shortages!.ToArray());
        Assert.Equal(0, _w.Pos("A").Reserved);
        Assert.Equal(before, _w.State());
    }

    [Fact]
    public void every_short_line_is_reported()
    {
        _w.Stock(1, sku: "A");
        _w.Stock(10, sku: "B");
        _w.Stock(2, sku: "C", location: "L2");

        var outcome = _w.Reserve("r1", "web", Line("A", 5), Line("B", 2), Line("C", 3));

        Assert.Equal([new Shortage("A", 5, 1), new Shortage("C", 3, 2)], outcome.Shortages!.ToArray());
        Assert.Equal(0, _w.Pos("B").Reserved);
    }

    [Fact]
    public void two_lines_of_the_same_sku_compete_for_the_same_units()
    {
        _w.Stock(5);
        var before = _w.State();

        var outcome = _w.Reserve("r1", "web", Line("A", 3), Line("A", 3));

        Assert.Equal(ReservationResult.Insufficient, outcome.Result);
        Assert.Equal([new Shortage("A", 3, 2)], outcome.Shortages!.ToArray());
        Assert.Equal(0, _w.Pos().Reserved);
        Assert.Equal(before, _w.State());
    }

    [Fact]
    public void two_lines_of_the_same_sku_are_both_held_when_the_stock_covers_them()
    {
        _w.Stock(6);

        var outcome = _w.Reserve("r1", "web", Line("A", 3), Line("A", 3));

        Assert.Equal(ReservationResult.Created, outcome.Result);
        Assert.Equal(6, _w.Pos().Reserved);
        Assert.Equal(0, _w.Pos().Available);
    }

    [Fact]
    public void line_at_a_given_location_is_short_even_when_another_location_has_stock()
    {
        _w.Stock(1, location: "L1");
        _w.Stock(10, location: "L2");

        var outcome = _w.Reserve("r1", "web", Line("A", 3, "L1"));

        Assert.Equal([new Shortage("A", 3, 1)], outcome.Shortages!.ToArray());
        Assert.Equal(0, _w.Pos("A", "L2").Reserved);
    }

    [Fact]
    public void reservation_can_take_the_last_unit_but_never_more()
    {
        _w.Stock(4);

        Assert.Equal(ReservationResult.Created, _w.Reserve("r1", "web", Line("A", 4)).Result);
        Assert.Equal(0, _w.Pos().Available);

        var more = _w.Reserve("r2", "web", Line("A", 1));
        Assert.Equal(ReservationResult.Insufficient, more.Result);
        Assert.Equal([new Shortage("A", 1, 0)], more.Shortages!.ToArray());
        Assert.Equal(0, _w.Pos().Available);
    }

    [Fact]
    public void oversold_position_cannot_be_reserved_from()
    {
        _w.Stock(2);
        _w.Apply(EventType.Sold, 5);

        var outcome = _w.Reserve("r1", "web", Line("A", 1, "L1"));

        Assert.Equal([new Shortage("A", 1, 0)], outcome.Shortages!.ToArray());
        Assert.Equal(-3, _w.Pos().Available);
    }

    [Fact]
    public void safety_stock_is_never_reserved()
    {
        _w.Stock(10);
        _w.Shard.SetSafetyStock("A", "L1", 4, _w.Now, "corr", _w.Fx);

        var outcome = _w.Reserve("r1", "web", Line("A", 7));

        Assert.Equal([new Shortage("A", 7, 6)], outcome.Shortages!.ToArray());
        Assert.Equal(ReservationResult.Created, _w.Reserve("r2", "web", Line("A", 6)).Result);
    }

    [Fact]
    public void damaged_and_inspection_units_are_never_reserved()
    {
        _w.Stock(10);
        _w.Apply(EventType.Damaged, 3);
        _w.Apply(EventType.ReturnReceived, 2); // onHand 12, sellable 7

        Assert.Equal([new Shortage("A", 8, 7)], _w.Reserve("r1", "web", Line("A", 8)).Shortages!.ToArray());
        Assert.Equal(ReservationResult.Created, _w.Reserve("r2", "web", Line("A", 7)).Result);
    }

    // ------------------------------------------------------------------ channel availability

    [Fact]
    public void allocation_percent_limits_a_reservation()
    {
        PutChannel("half", ["L1", "L2"], percent: 50);
        _w.Stock(7, location: "L1");
        _w.Stock(4, location: "L2");
        var half = _w.Shard.FindChannel("half")!;
        Assert.Equal(5, _w.Shard.Ats(half, "A")); // floor(11 * 50 / 100)

        var tooMuch = _w.Reserve("r1", "half", Line("A", 6));
        Assert.Equal(ReservationResult.Insufficient, tooMuch.Result);
        Assert.Equal([new Shortage("A", 6, 5)], tooMuch.Shortages!.ToArray());

        Assert.Equal(ReservationResult.Created, _w.Reserve("r2", "half", Line("A", 5)).Result);
    }

    [Fact]
    public void buffer_units_limit_a_reservation()
    {
        PutChannel("buffered", ["L1"], buffer: 3);
        _w.Stock(10);

        var tooMuch = _w.Reserve("r1", "buffered", Line("A", 8));
        Assert.Equal([new Shortage("A", 8, 7)], tooMuch.Shortages!.ToArray());

        Assert.Equal(ReservationResult.Created, _w.Reserve("r2", "buffered", Line("A", 7)).Result);
        Assert.Equal(0, _w.Shard.Ats(_w.Shard.FindChannel("buffered")!, "A"));
        Assert.Equal(ReservationResult.Insufficient, _w.Reserve("r3", "buffered", Line("A", 1)).Result);
        Assert.Equal(3, _w.Pos().Available); // the buffer is still on the shelf
    }

    [Fact]
    public void max_quantity_caps_a_reservation()
    {
        PutChannel("capped", ["L1"], max: 4);
        _w.Stock(10);

        var tooMuch = _w.Reserve("r1", "capped", Line("A", 5));
        Assert.Equal([new Shortage("A", 5, 4)], tooMuch.Shortages!.ToArray());

        Assert.Equal(ReservationResult.Created, _w.Reserve("r2", "capped", Line("A", 4)).Result);
    }

    [Fact]
    public void channel_availability_is_recomputed_for_each_line_after_the_lines_before_it()
    {
        PutChannel("half", ["L1"], percent: 50);
        _w.Stock(10);

        // 3 <= floor(10/2); then 3 <= floor(7/2).
        Assert.Equal(ReservationResult.Created, _w.Reserve("r1", "half", Line("A", 3), Line("A", 3)).Result);
        _w.Release("r1");

        // 3 <= floor(10/2); then 4 > floor(7/2).
        var outcome = _w.Reserve("r2", "half", Line("A", 3), Line("A", 4));
        Assert.Equal([new Shortage("A", 4, 3)], outcome.Shortages!.ToArray());
        Assert.Equal(0, _w.Pos().Reserved);
    }

    [Fact]
    public void reservation_at_a_given_location_is_still_limited_by_channel_availability()
    {
        PutChannel("half", ["L1", "L2"], percent: 50);
        _w.Stock(10, location: "L2");

        var outcome = _w.Reserve("r1", "half", Line("A", 6, "L2"));

        Assert.Equal([new Shortage("A", 6, 5)], outcome.Shortages!.ToArray());
    }

    [Fact]
    public void ats_sums_the_sourcing_locations_ignoring_negative_available()
    {
        _w.Stock(1, location: "L1");
        _w.Apply(EventType.Sold, 4, location: "L1"); // available -3
        _w.Stock(5, location: "L2");
        _w.Stock(100, location: "L3");               // not in web's list

        Assert.Equal(5, _w.Shard.Ats(_w.Shard.FindChannel("web")!, "A"));
    }

    [Theory]
    [InlineData(10, 100, 0, null, 10)]
    [InlineData(10, 50, 0, null, 5)]
    [InlineData(11, 50, 0, null, 5)]   // floor
    [InlineData(9, 33, 0, null, 2)]    // floor(2.97)
    [InlineData(10, 100, 4, null, 6)]
    [InlineData(10, 100, 10, null, 0)]
    [InlineData(10, 100, 25, null, 0)] // clamped at zero
    [InlineData(10, 50, 2, null, 3)]   // percent before buffer
    [InlineData(10, 100, 0, 7, 7)]
    [InlineData(10, 100, 5, 7, 5)]
    [InlineData(10, 100, 0, 0, 0)]
    [InlineData(0, 100, 0, null, 0)]
    [InlineData(10, 0, 0, null, 0)]
    public void ats_is_the_clamped_share_of_the_pool_minus_the_buffer(int stock, int percent, int buffer, int? max, int expected)
    {
        if (stock > 0)
        {
            _w.Stock(stock);
        }
        var channel = new Channel("c", "c", ["L1"], percent, buffer, max, null);

        Assert.Equal(expected, _w.Shard.Ats(channel, "A"));
    }

    // ------------------------------------------------------------------ invalid requests and idempotency

    [Fact]
    public void reservation_through_an_unknown_channel_is_invalid()
    {
        _w.Stock(10);

        var outcome = _w.Reserve("r1", "nochannel", Line("A", 1));

        Assert.Equal((ReservationResult.Invalid, RejectionTypes.UnknownChannel), (outcome.Result, outcome.ErrorType));
        Assert.False(outcome.Journaled);
        Assert.Null(_w.Shard.FindReservation("r1"));
        Assert.Equal(0, _w.Pos().Reserved);
    }

    [Fact]
    public void reservation_at_an_unknown_location_is_invalid()
    {
        _w.Stock(10);

        var outcome = _w.Reserve("r1", "web", Line("A", 1, "L1"), Line("A", 1, "nowhere"));

        Assert.Equal((ReservationResult.Invalid, RejectionTypes.UnknownLocation), (outcome.Result, outcome.ErrorType));
        Assert.Equal(0, _w.Pos().Reserved);
    }

    [Fact]
    public void reservation_at_a_location_outside_the_sourcing_list_is_invalid()
    {
        _w.Stock(10, location: "L3");
        var before = _w.State();

        var outcome = _w.Reserve("r1", "web", Line("A", 1, "L3"));

        Assert.Equal((ReservationResult.Invalid, RejectionTypes.LocationNotSourced), (outcome.Result, outcome.ErrorType));
        Assert.Contains("L3", outcome.ErrorDetail, StringComparison.Ordinal);
        Assert.Equal(before, _w.State());
    }

    [Fact]
    public void same_reservation_id_and_content_returns_the_existing_reservation_and_holds_nothing_more()
    {
        _w.Stock(10);
        var request = Request("r1", "web", 900, Line("A", 4));
        var first = _w.Reserve(request);
        _w.Fx.Clear();

        var again = _w.Reserve(request);

        Assert.Equal(ReservationResult.Existing, again.Result);
        Assert.False(again.Journaled);
        Assert.Same(first.Reservation, again.Reservation);
        Assert.Equal(4, _w.Pos().Reserved);
        Assert.Empty(_w.Fx.Ledger);
    }

    [Fact]
    public void same_reservation_id_with_other_content_is_a_conflict_and_changes_nothing()
    {
        _w.Stock(10);
        _w.Reserve(Request("r1", "web", 900, Line("A", 4)));
        var before = _w.State();

        var other = Request("r1", "web", 900, Line("A", 5)) with { Fingerprint = new Fingerprint(7, 7) };
        var outcome = _w.Reserve(other);

        Assert.Equal(ReservationResult.Conflict, outcome.Result);
        Assert.Equal(RejectionTypes.IdempotencyConflict, outcome.ErrorType);
        Assert.False(outcome.Journaled);
        Assert.Equal(4, outcome.Reservation!.Lines[0].Quantity);
        Assert.Equal(before, _w.State());
    }

    [Fact]
    public void existing_answer_reflects_the_reservation_as_it_is_now()
    {
        _w.Stock(10);
        var request = Request("r1", "web", 900, Line("A", 4));
        _w.Reserve(request);
        _w.Commit("r1");

        var again = _w.Reserve(request);

        Assert.Equal(ReservationResult.Existing, again.Result);
        Assert.Equal(ReservationStatus.Committed, again.Reservation!.Status);
        Assert.Equal(4, _w.Pos().Allocated);
        Assert.Equal(0, _w.Pos().Reserved);
    }

    [Fact]
    public void existing_request_after_the_expiry_returns_the_reservation_expired()
    {
        _w.Stock(10);
        var request = Request("r1", "web", 60, Line("A", 4));
        _w.Reserve(request);
        _w.Now = _w.Now.AddSeconds(61);

        var again = _w.Reserve(request);

        Assert.Equal(ReservationResult.Existing, again.Result);
        Assert.Equal(ReservationStatus.Expired, again.Reservation!.Status);
        Assert.Equal(0, _w.Pos().Reserved);
    }

    [Fact]
    public void insufficient_reservation_is_not_remembered_and_can_be_retried()
    {
        var request = Request("r1", "web", 900, Line("A", 4));
        Assert.Equal(ReservationResult.Insufficient, _w.Reserve(request).Result);

        _w.Stock(10);

        Assert.Equal(ReservationResult.Created, _w.Reserve(request).Result);
        Assert.Equal(4, _w.Pos().Reserved);
    }

    // ------------------------------------------------------------------ commit

    [Fact]
    public void commit_moves_the_units_from_reserved_to_allocated()
    {
        _w.Stock(10);
        _w.ReserveFor("r1", "web", 60, Line("A", 4));
        _w.Fx.Clear();

        var outcome = _w.Commit("r1");

        Assert.Equal(ReservationResult.Changed, outcome.Result);
        Assert.True(outcome.Journaled);
        Assert.Equal(ReservationStatus.Committed, outcome.Reservation!.Status);
        Assert.Null(outcome.Reservation.EndedAt);
        Assert.Equal(0, _w.Pos().Reserved);
        Assert.Equal(4, _w.Pos().Allocated);
        Assert.Equal(6, _w.Pos().Available);
        var row = Assert.Single(_w.Fx.Ledger);
        Assert.Equal(("reservation_committed", "r1", 4L, 6L), (row.Type, row.ReservationId, row.Quantity, row.AvailableAfter));
    }

    [Fact]
    public void committed_reservation_no_longer_expires()
    {
        _w.Stock(10);
        _w.ReserveFor("r1", "web", 60, Line("A", 4));
        _w.Commit("r1");

        Assert.Equal(0, _w.Shard.ExpireDue(_w.Now.AddDays(1), _w.Fx));

        Assert.Equal(ReservationStatus.Committed, _w.Shard.FindReservation("r1")!.Status);
        Assert.Equal(4, _w.Pos().Allocated);
    }

    [Fact]
    public void commit_is_idempotent()
    {
        _w.Stock(10);
        _w.Reserve("r1", "web", Line("A", 4));
        _w.Commit("r1");
        _w.Fx.Clear();

        var again = _w.Commit("r1");

        Assert.Equal(ReservationResult.Unchanged, again.Result);
        Assert.False(again.Journaled);
        Assert.Equal(4, _w.Pos().Allocated);
        Assert.Equal(0, _w.Pos().Reserved);
        Assert.Empty(_w.Fx.Ledger);
    }

    [Fact]
    public void commit_of_an_unknown_reservation_is_not_found()
    {
        var outcome = _w.Commit("nope");

        Assert.Equal(ReservationResult.NotFound, outcome.Result);
        Assert.Null(outcome.Reservation);
        Assert.False(outcome.Journaled);
    }

    [Fact]
    public void commit_just_before_the_expiry_succeeds()
    {
        _w.Stock(10);
        _w.ReserveFor("r1", "web", 60, Line("A", 4));
        _w.Now = _w.Now.AddSeconds(60) - Tick;

        Assert.Equal(ReservationResult.Changed, _w.Commit("r1").Result);
        Assert.Equal(4, _w.Pos().Allocated);
    }

    [Fact]
    public void commit_at_the_expiry_expires_the_reservation_and_is_illegal()
    {
        _w.Stock(10);
        _w.ReserveFor("r1", "web", 60, Line("A", 4));
        _w.Now = _w.Now.AddSeconds(60);

        var outcome = _w.Commit("r1");

        Assert.Equal(ReservationResult.IllegalState, outcome.Result);
        Assert.Equal(RejectionTypes.IllegalState, outcome.ErrorType);
        Assert.Equal(ReservationStatus.Expired, outcome.Reservation!.Status);
        Assert.Equal(_w.Now, outcome.Reservation.EndedAt);
        Assert.Equal(0, _w.Pos().Reserved);
        Assert.Equal(0, _w.Pos().Allocated);
        Assert.Equal(10, _w.Pos().Available);
    }

    [Fact]
    public void commit_of_a_released_reservation_is_illegal()
    {
        _w.Stock(10);
        _w.Reserve("r1", "web", Line("A", 4));
        _w.Release("r1");

        var outcome = _w.Commit("r1");

        Assert.Equal(ReservationResult.IllegalState, outcome.Result);
        Assert.Equal(0, _w.Pos().Allocated);
        Assert.Equal(10, _w.Pos().Available);
    }

    [Fact]
    public void commit_of_a_fulfilled_reservation_is_unchanged()
    {
        _w.Stock(10);
        _w.Order("r1", "web", Line("A", 4));
        _w.Apply(EventType.Shipped, 4, reservationId: "r1");

        var outcome = _w.Commit("r1");

        Assert.Equal(ReservationResult.Unchanged, outcome.Result);
        Assert.Equal(ReservationStatus.Fulfilled, outcome.Reservation!.Status);
        Assert.Equal(0, _w.Pos().Allocated);
    }

    // ------------------------------------------------------------------ release

    [Fact]
    public void release_of_a_held_reservation_returns_the_reserved_units()
    {
        _w.Stock(10);
        _w.Reserve("r1", "web", Line("A", 4));
        _w.Now = _w.Now.AddMinutes(1);
        _w.Fx.Clear();

        var outcome = _w.Release("r1");

        Assert.Equal(ReservationResult.Changed, outcome.Result);
        Assert.True(outcome.Journaled);
        Assert.Equal(ReservationStatus.Released, outcome.Reservation!.Status);
        Assert.Equal(_w.Now, outcome.Reservation.EndedAt);
        Assert.Equal(0, _w.Pos().Reserved);
        Assert.Equal(10, _w.Pos().Available);
        Assert.Equal(("reservation_released", 4L), (Assert.Single(_w.Fx.Ledger).Type, _w.Fx.Ledger[0].Quantity));
    }

    [Fact]
    public void released_reservation_does_not_expire_later()
    {
        _w.Stock(10);
        _w.ReserveFor("r1", "web", 60, Line("A", 4));
        _w.Release("r1");

        Assert.Equal(0, _w.Shard.ExpireDue(_w.Now.AddHours(1), _w.Fx));
        Assert.Equal(ReservationStatus.Released, _w.Shard.FindReservation("r1")!.Status);
        Assert.Equal(10, _w.Pos().Available);
    }

    [Fact]
    public void release_of_a_committed_reservation_returns_the_allocated_units()
    {
        _w.Stock(10);
        _w.Order("r1", "web", Line("A", 4));

        var outcome = _w.Release("r1");

        Assert.Equal(ReservationResult.Changed, outcome.Result);
        Assert.Equal(ReservationStatus.Released, outcome.Reservation!.Status);
        Assert.Equal(0, _w.Pos().Allocated);
        Assert.Equal(10, _w.Pos().Available);
    }

    [Fact]
    public void release_of_a_partially_shipped_order_returns_only_the_unshipped_units()
    {
        _w.Stock(10);
        _w.Order("r1", "web", Line("A", 4));
        _w.Apply(EventType.Shipped, 1, reservationId: "r1");

        _w.Release("r1");

        Assert.Equal(0, _w.Pos().Allocated);
        Assert.Equal(9, _w.Pos().OnHand);
        Assert.Equal(9, _w.Pos().Available);
    }

    [Fact]
    public void release_is_idempotent()
    {
        _w.Stock(10);
        _w.Reserve("r1", "web", Line("A", 4));
        _w.Release("r1");
        _w.Fx.Clear();

        var again = _w.Release("r1");

        Assert.Equal(ReservationResult.Unchanged, again.Result);
        Assert.False(again.Journaled);
        Assert.Equal(0, _w.Pos().Reserved);
        Assert.Equal(10, _w.Pos().Available);
        Assert.Empty(_w.Fx.Ledger);
    }

    [Fact]
    public void release_of_an_expired_reservation_is_illegal_and_returns_nothing_twice()
    {
        _w.Stock(10);
        _w.ReserveFor("r1", "web", 60, Line("A", 4));
        _w.Shard.ExpireDue(_w.Now.AddSeconds(60), _w.Fx);

        var outcome = _w.Release("r1");

        Assert.Equal(ReservationResult.IllegalState, outcome.Result);
        Assert.Equal(RejectionTypes.IllegalState, outcome.ErrorType);
        Assert.Equal(ReservationStatus.Expired, outcome.Reservation!.Status);
        Assert.Equal(0, _w.Pos().Reserved);
        Assert.Equal(10, _w.Pos().Available);
    }

    [Fact]
    public void release_after_the_expiry_time_finds_the_reservation_expired()
    {
        _w.Stock(10);
        _w.ReserveFor("r1", "web", 60, Line("A", 4));
        _w.Now = _w.Now.AddSeconds(90);

        var outcome = _w.Release("r1");

        Assert.Equal(ReservationResult.IllegalState, outcome.Result);
        Assert.Equal(ReservationStatus.Expired, outcome.Reservation!.Status);
        Assert.Equal(0, _w.Pos().Reserved);
    }

    [Fact]
    public void release_of_a_fulfilled_reservation_is_illegal()
    {
        _w.Stock(10);
        _w.Order("r1", "web", Line("A", 4));
        _w.Apply(EventType.Shipped, 4, reservationId: "r1");

        var outcome = _w.Release("r1");

        Assert.Equal(ReservationResult.IllegalState, outcome.Result);
        Assert.Equal(ReservationStatus.Fulfilled, outcome.Reservation!.Status);
        Assert.Equal(6, _w.Pos().Available);
    }

    [Fact]
    public void release_of_an_unknown_reservation_is_not_found()
    {
        Assert.Equal(ReservationResult.NotFound, _w.Release("nope").Result);
    }

    // ------------------------------------------------------------------ expiry

    [Fact]
    public void expire_due_expires_a_held_reservation_exactly_at_its_expiry()
    {
        _w.Stock(10);
        _w.ReserveFor("r1", "web", 60, Line("A", 4));
        var expiresAt = _w.Now.AddSeconds(60);
        _w.Fx.Clear();

        Assert.Equal(0, _w.Shard.ExpireDue(expiresAt - Tick, _w.Fx));
        Assert.Equal(ReservationStatus.Held, _w.Shard.FindReservation("r1")!.Status);
        Assert.Equal(4, _w.Pos().Reserved);

        Assert.Equal(1, _w.Shard.ExpireDue(expiresAt, _w.Fx));

        var r = _w.Shard.FindReservation("r1")!;
        Assert.Equal(ReservationStatus.Expired, r.Status);
        Assert.Equal(expiresAt, r.EndedAt);
        Assert.Equal(0, _w.Pos().Reserved);
        Assert.Equal(10, _w.Pos().Available);
        var row = Assert.Single(_w.Fx.Ledger);
        Assert.Equal(("reservation_expired", "r1", 4L, expiresAt, expiresAt), (row.Type, row.ReservationId, row.Quantity, row.OccurredAt, row.RecordedAt));
        Assert.Equal(0, _w.Shard.ExpireDue(expiresAt.AddHours(1), _w.Fx));
    }

    [Fact]
    public void expire_due_expires_every_due_reservation_and_only_those()
    {
        _w.Stock(10);
        _w.ReserveFor("r30", "web", 30, Line("A", 1));
        _w.ReserveFor("r90", "web", 90, Line("A", 1));
        _w.ReserveFor("r60", "web", 60, Line("A", 1));

        Assert.Equal(2, _w.Shard.ExpireDue(_w.Now.AddSeconds(60), _w.Fx));

        Assert.Equal(ReservationStatus.Expired, _w.Shard.FindReservation("r30")!.Status);
        Assert.Equal(ReservationStatus.Expired, _w.Shard.FindReservation("r60")!.Status);
        Assert.Equal(ReservationStatus.Held, _w.Shard.FindReservation("r90")!.Status);
        Assert.Equal(1, _w.Pos().Reserved);
    }

    [Fact]
    public void expire_due_leaves_committed_and_released_reservations_alone()
    {
        _w.Stock(10);
        _w.ReserveFor("committed", "web", 30, Line("A", 1));
        _w.ReserveFor("released", "web", 30, Line("A", 2));
        _w.ReserveFor("held", "web", 30, Line("A", 3));
        _w.Commit("committed");
        _w.Release("released");

        Assert.Equal(1, _w.Shard.ExpireDue(_w.Now.AddSeconds(30), _w.Fx));

        Assert.Equal(ReservationStatus.Committed, _w.Shard.FindReservation("committed")!.Status);
        Assert.Equal(ReservationStatus.Released, _w.Shard.FindReservation("released")!.Status);
        Assert.Equal(ReservationStatus.Expired, _w.Shard.FindReservation("held")!.Status);
        Assert.Equal(1, _w.Pos().Allocated);
        Assert.Equal(0, _w.Pos().Reserved);
        Assert.Equal(9, _w.Pos().Available);
    }

    // ------------------------------------------------------------------ fulfilment

    [Fact]
    public void shipping_every_line_fulfils_the_reservation()
    {
        _w.Stock(10, sku: "A");
        _w.Stock(10, sku: "B", location: "L2");
        _w.Order("r1", "web", Line("A", 2), Line("B", 3));

        _w.Apply(EventType.Shipped, 2, sku: "A", reservationId: "r1");
        Assert.Equal(ReservationStatus.Committed, _w.Shard.FindReservation("r1")!.Status);
        _w.Now = _w.Now.AddHours(2);
        _w.Apply(EventType.Shipped, 3, sku: "B", location: "L2", reservationId: "r1");

        var r = _w.Shard.FindReservation("r1")!;
        Assert.Equal(ReservationStatus.Fulfilled, r.Status);
        Assert.Equal(_w.Now, r.EndedAt);
        Assert.All(r.Lines, l => Assert.Equal(l.Quantity, l.Shipped));
        Assert.Equal(0, _w.Pos("A").Allocated);
        Assert.Equal(0, _w.Pos("B", "L2").Allocated);
        Assert.Equal(8, _w.Pos("A").OnHand);
        Assert.Equal(7, _w.Pos("B", "L2").OnHand);
    }

    [Fact]
    public void reservation_status_wire_names()
    {
        Assert.Equal(
            ["held", "committed", "released", "expired", "fulfilled"],
            Enum.GetValues<ReservationStatus>().Select(Shard.Name).ToArray());
    }

    // ------------------------------------------------------------------ journal contract

    /// <summary>
    /// <see cref="ReservationOutcome.Journaled"/> promises "true when the state changed and the
    /// command must be journaled". A commit that finds its reservation past the expiry expires it
    /// (reserved goes down) and answers IllegalState, which is not journaled.
    /// </summary>
    [Fact]
    public void commit_that_expires_a_due_reservation_reports_the_change_as_journaled()
    {
        _w.Stock(5);
        _w.ReserveFor("r1", "web", 60, Line("A", 5));
        _w.Now = _w.Now.AddSeconds(60);

        var outcome = _w.Commit("r1");

        Assert.Equal(0, _w.Pos().Reserved); // the state changed ...
        Assert.True(outcome.Journaled, $"{outcome.Result} changed the state (reserved 5 -> 0) but is not journaled");
    }

    [Fact]
    public void replaying_the_journaled_commands_reproduces_a_reservation_that_used_units_freed_by_a_failed_commit()
    {
        var journal = new List<(DateTimeOffset At, Func<Shard, Effects, DateTimeOffset, bool> Run)>();
        void Run(DateTimeOffset at, Func<Shard, Effects, DateTimeOffset, bool> command)
        {
            if (command(_w.Shard, _w.Fx, at))
            {
                journal.Add((at, command));
            }
        }
        var receipt = _w.Event(EventType.Received, 5);
        Run(_w.Now, (s, fx, at) => s.ApplyEvent(receipt, at, fx).Journaled);
        Run(_w.Now, (s, fx, at) => s.CreateReservation(Request("r1", "web", 60, Line("A", 5)), at, fx).Journaled);
        var later = _w.Now.AddSeconds(60);
        Run(later, (s, fx, at) => s.CommitReservation("r1", at, "c", fx).Journaled); // too late: IllegalState
        Run(later, (s, fx, at) => s.CreateReservation(Request("r2", "web", 900, Line("A", 5)), at, fx).Journaled);
        Assert.Equal(ReservationStatus.Held, _w.Shard.FindReservation("r2")?.Status);

        var replayed = new Shard();
        Declare(replayed);
        foreach (var (at, command) in journal)
        {
            command(replayed, new Effects(), at);
        }

        Assert.Equal(ReservationStatus.Held, replayed.FindReservation("r2")?.Status);
        Assert.Equal(_w.State(), Snapshot.Of(replayed));
    }
}
