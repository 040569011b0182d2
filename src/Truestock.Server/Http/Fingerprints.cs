using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Truestock.Core;

namespace Truestock.Server.Http;

/// <summary>
/// Digests of request content for idempotency. The correlation id is left out on purpose: a
/// retry of the same event under a new correlation id is still the same event.
/// </summary>
internal static class Fingerprints
{
    public static Fingerprint Of(params object?[] parts)
    {
        var sb = new StringBuilder(256);
        foreach (var p in parts)
        {
            // A separator that cannot appear in validated text keeps "ab"+"c" apart from "a"+"bc".
            sb.Append(p switch
            {
                null => "\u0001",
                DateTimeOffset t => t.UtcTicks.ToString(CultureInfo.InvariantCulture),
                IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
                _ => p.ToString(),
            }).Append('\u0000');
        }
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString()), hash);
        return new Fingerprint(BinaryPrimitives.ReadUInt64BigEndian(hash), BinaryPrimitives.ReadUInt64BigEndian(hash[8..]));
    }
}
