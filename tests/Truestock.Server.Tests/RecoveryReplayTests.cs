namespace Truestock.Server.Tests;

/// <summary>
/// Start-up replay reads and decodes the journal on other threads than the one that decides it.
/// These tests pin that a journal longer than what is decoded ahead replays to the same state, and
/// that a record this build cannot replay still stops the start with its own message.
/// </summary>
public sealed class RecoveryReplayTests
{
    /// <summary>More records than the reader may decode ahead of the deciding thread (8 chunks of 256).</summary>
    private const int CopiesOfLastBatch = 3000;

    private static async Task<string> Positions(HubServer hub) =>
        (await hub.GetJson("/v1/availability/SKU-1")).GetRawText() + (await hub.GetJson("/v1/availability/SKU-2")).GetRawText();

    /// <summary>A stopped hub whose journal (no snapshot) is 20 batches and then thousands of copies of the last; and its positions before.</summary>
    private static async Task<(HubServer Hub, string Before)> HubWithLongJournal()
    {
        var hub = await HubServer.Start();
        await hub.Setup();
        for (var i = 0; i < 20; i++)
        {
            await hub.Events(
                HubServer.Event("received", "SKU-1", "WH1", 5 + i, HubServer.Epoch.AddMinutes(i)),
                HubServer.Event("sold", "SKU-2", "S1", 1, HubServer.Epoch.AddMinutes(i)));
        }
        var before = await Positions(hub);
        await hub.Stop();
        hub.Storage.Execute("DELETE FROM snapshots");
        // The same batch journaled again and again: each copy replays as duplicates and changes nothing.
        hub.Storage.Execute($"""
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {CopiesOfLastBatch})
            INSERT INTO commands (seq, recorded_at, kind, payload)
            SELECT last.seq + n.i, last.recorded_at, last.kind, last.payload
            FROM n, (SELECT seq, recorded_at, kind, payload FROM commands ORDER BY seq DESC LIMIT 1) AS last
            """);
        return (hub, before);
    }

    [Fact]
    public async Task a_journal_longer_than_the_read_ahead_replays_to_the_same_state()
    {
        var (hub, before) = await HubWithLongJournal();
        await using (hub)
        {
            await hub.Restart();

            Assert.Equal(before, await Positions(hub));
        }
    }

    [Fact]
    public async Task a_record_of_an_unknown_kind_early_in_a_long_journal_stops_the_start_with_its_sequence_number()
    {
        var (hub, _) = await HubWithLongJournal();
        await using (hub)
        {
            hub.Storage.Execute("UPDATE commands SET kind = 'from.the.future' WHERE seq = 5");

            var error = await Assert.ThrowsAsync<InvalidOperationException>(hub.Restart);

            Assert.Contains("Journal record 5 has unknown kind 'from.the.future'", error.Message, StringComparison.Ordinal);
        }
    }
}
