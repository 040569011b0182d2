namespace Truestock.Connectors;

/// <summary>
/// Reads an answer's body whole, but never more than a limit, so that a misbehaving channel cannot make a connector
/// buffer an unbounded body. Callers decide what an oversized body means to them (each has its own error).
/// </summary>
internal static class BoundedBody
{
    /// <summary>Reads the whole body; null when it is larger than <paramref name="bytesMax"/>.</summary>
    public static async Task<byte[]?> ReadAsync(HttpContent content, int bytesMax, CancellationToken cancellationToken)
    {
        var stream = await content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            using var buffer = new MemoryStream();
            var chunk = new byte[16 * 1024];
            while (true)
            {
                var read = await stream.ReadAsync(chunk, cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    return buffer.ToArray();
                }
                if (buffer.Length + read > bytesMax)
                {
                    return null;
                }
                buffer.Write(chunk, 0, read);
            }
        }
    }
}
