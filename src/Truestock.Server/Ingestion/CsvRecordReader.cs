using System.Buffers;

namespace Truestock.Server.Ingestion;

/// <summary>What is wrong with a CSV record as a record (before its fields mean anything).</summary>
internal enum CsvRecordProblem
{
    /// <summary>The record is well-formed.</summary>
    None,
    /// <summary>A quote inside an unquoted field, or text after a closing quote (RFC 4180 §2.5–2.7).</summary>
    StrayQuote,
    /// <summary>The input ended inside a quoted field.</summary>
    Unterminated,
    /// <summary>The record has more fields than allowed; only the first ones are kept.</summary>
    TooManyFields,
    /// <summary>The record is longer than allowed; its fields are not kept.</summary>
    TooLong,
}

/// <summary>
/// Reads RFC 4180 records from a byte stream, one at a time, without ever holding more than one
/// record: a file of any size streams through a fixed buffer. Fields are UTF-8 byte spans with
/// quotes removed and doubled quotes undone. Line breaks are CRLF, LF or a lone CR; a quoted field
/// may hold any of them. Blank lines are skipped. A record that is too long or has too many fields
/// is still read to its end (so the next record starts in the right place) and reported through
/// <see cref="Problem"/> instead of being kept.
/// </summary>
internal sealed class CsvRecordReader
{
    private static readonly SearchValues<byte> UnquotedSpecials = SearchValues.Create(","u8 + "\""u8 + "\r"u8 + "\n"u8);
    private static readonly SearchValues<byte> LineBreaks = SearchValues.Create("\r\n"u8);

    private enum State
    {
        FieldStart,
        Unquoted,
        Quoted,
        QuoteInQuoted,
    }

    private readonly Stream _stream;
    private readonly long _bytesMax;
    private readonly byte[] _buffer;
    private readonly byte[] _data;
    private readonly int[] _fieldEnds;
    private int _pos;
    private int _len;
    private bool _eof;
    private bool _started;

    private State _state;
    private bool _inRecord;
    private bool _skipLf;
    private bool _prevCr;
    private bool _anyQuote;
    private int _dataLength;
    private int _recordBytes;
    private int _fieldCount;
    private int _fieldsSeen;
    private long _line = 1;
    private bool _atLineStart = true;

    /// <param name="stream">The input; read forward only.</param>
    /// <param name="recordBytesMax">Longest record kept, in bytes (field content and separators).</param>
    /// <param name="fieldsMax">Most fields kept in one record.</param>
    /// <param name="bytesMax">Most bytes read from the stream; past it reading stops (see <see cref="LimitExceeded"/>).</param>
    public CsvRecordReader(Stream stream, int recordBytesMax, int fieldsMax, long bytesMax = long.MaxValue)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentOutOfRangeException.ThrowIfLessThan(recordBytesMax, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(fieldsMax, 1);
        _stream = stream;
        _bytesMax = bytesMax;
        _buffer = new byte[64 * 1024];
        _data = new byte[recordBytesMax];
        _fieldEnds = new int[fieldsMax];
    }

    /// <summary>Bytes read from the stream so far (a UTF-8 byte order mark included).</summary>
    public long BytesRead { get; private set; }

    /// <summary>Physical lines read so far, whether or not they were complete records.</summary>
    public long LinesRead => _atLineStart ? _line - 1 : _line;

    /// <summary>True when the stream held more than the byte limit; reading stopped there.</summary>
    public bool LimitExceeded { get; private set; }

    /// <summary>The physical line (1-based) the current record starts on.</summary>
    public long RecordLine { get; private set; }

    /// <summary>What is wrong with the current record, if anything.</summary>
    public CsvRecordProblem Problem { get; private set; }

    /// <summary>Fields kept of the current record (at most fieldsMax; none when it is too long).</summary>
    public int FieldCount => _fieldCount;

    /// <summary>Fields the current record has, including those beyond fieldsMax.</summary>
    public int FieldsSeen => _fieldsSeen;

    /// <summary>The UTF-8 bytes of one field of the current record, unquoted.</summary>
    public ReadOnlySpan<byte> Field(int index)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, _fieldCount);
        var start = index == 0 ? 0 : _fieldEnds[index - 1];
        return _data.AsSpan(start, _fieldEnds[index] - start);
    }

    /// <summary>Reads the next record; false at the end of the input or once the byte limit is passed.</summary>
    public async ValueTask<bool> ReadAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            if (_pos < _len && Scan())
            {
                return true;
            }
            if (_eof || LimitExceeded)
            {
                // A record cut off by the byte limit is not returned: its end was never seen.
                return !LimitExceeded && FinishAtEnd();
            }
            await Fill(cancellationToken).ConfigureAwait(false);
        }
    }

    private async ValueTask Fill(CancellationToken cancellationToken)
    {
        _pos = 0;
        _len = 0;
        // The first read gathers at least three bytes, so that a UTF-8 byte order mark is seen whole.
        var wanted = _started ? 1 : 3;
        while (_len < wanted)
        {
            var read = await _stream.ReadAsync(_buffer.AsMemory(_len), cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                _eof = true;
                break;
            }
            if (BytesRead + read > _bytesMax)
            {
                // Only the bytes within the limit are parsed; the rest of the input is never looked at.
                read = (int)(_bytesMax - BytesRead);
                LimitExceeded = true;
                BytesRead = _bytesMax;
                _len += read;
                break;
            }
            BytesRead += read;
            _len += read;
        }
        if (!_started)
        {
            _started = true;
            if (_buffer.AsSpan(0, _len).StartsWith("\uFEFF"u8))
            {
                _pos = 3;
            }
        }
    }

    /// <summary>Consumes buffered bytes; true when a record is complete.</summary>
    private bool Scan()
    {
        while (_pos < _len)
        {
            if (_skipLf)
            {
                // The LF of a CRLF that ended the previous record.
                _skipLf = false;
                if (_buffer[_pos] == (byte)'\n')
                {
                    _pos++;
                    _prevCr = false;
                    continue;
                }
            }
            if (!_inRecord)
            {
                StartRecord();
            }
            switch (_state)
            {
                case State.FieldStart:
                    if (_buffer[_pos] == (byte)'"')
                    {
                        _pos++;
                        _anyQuote = true;
                        _prevCr = false;
                        _atLineStart = false;
                        _state = State.Quoted;
                        break;
                    }
                    _state = State.Unquoted;
                    goto case State.Unquoted;

                case State.Unquoted:
                {
                    var rest = _buffer.AsSpan(_pos, _len - _pos);
                    var special = rest.IndexOfAny(UnquotedSpecials);
                    var run = special < 0 ? rest.Length : special;
                    if (run > 0)
                    {
                        Append(rest[..run]);
                        _pos += run;
                        _prevCr = false;
                        _atLineStart = false;
                    }
                    if (special < 0)
                    {
                        return false;
                    }
                    var b = _buffer[_pos++];
                    if (b == (byte)',')
                    {
                        _atLineStart = false;
                        _prevCr = false;
                        EndField();
                        _state = State.FieldStart;
                    }
                    else if (b == (byte)'"')
                    {
                        // RFC 4180 allows quotes only around a whole field; keep the byte and flag the record.
                        _atLineStart = false;
                        _prevCr = false;
                        Flag(CsvRecordProblem.StrayQuote);
                        Append("\""u8);
                    }
                    else
                    {
                        EndField();
                        LineBreak(b);
                        _skipLf = b == (byte)'\r';
                        if (EndRecord())
                        {
                            return true;
                        }
                    }
                    break;
                }

                case State.Quoted:
                {
                    var rest = _buffer.AsSpan(_pos, _len - _pos);
                    var quote = rest.IndexOf((byte)'"');
                    var run = quote < 0 ? rest : rest[..quote];
                    if (run.Length > 0)
                    {
                        CountLineBreaks(run);
                        Append(run);
                        _pos += run.Length;
                    }
                    if (quote < 0)
                    {
                        return false;
                    }
                    _pos++;
                    _prevCr = false;
                    _atLineStart = false;
                    _state = State.QuoteInQuoted;
                    break;
                }

                case State.QuoteInQuoted:
                {
                    var b = _buffer[_pos];
                    if (b == (byte)'"')
                    {
                        // A doubled quote inside a quoted field is one quote.
                        _pos++;
                        Append("\""u8);
                        _state = State.Quoted;
                    }
                    else if (b == (byte)',')
                    {
                        _pos++;
                        _atLineStart = false;
                        EndField();
                        _state = State.FieldStart;
                    }
                    else if (b is (byte)'\r' or (byte)'\n')
                    {
                        _pos++;
                        EndField();
                        LineBreak(b);
                        _skipLf = b == (byte)'\r';
                        // A quoted field is never empty as a record, so this record is returned.
                        return EndRecord();
                    }
                    else
                    {
                        // Text after a closing quote: keep it as part of the field and flag the record.
                        Flag(CsvRecordProblem.StrayQuote);
                        _state = State.Unquoted;
                    }
                    break;
                }
            }
        }
        return false;
    }

    private bool FinishAtEnd()
    {
        if (!_inRecord)
        {
            return false;
        }
        if (_state == State.Quoted)
        {
            Flag(CsvRecordProblem.Unterminated);
        }
        EndField();
        return EndRecord();
    }

    private void StartRecord()
    {
        _inRecord = true;
        _state = State.FieldStart;
        _anyQuote = false;
        _dataLength = 0;
        _recordBytes = 0;
        _fieldCount = 0;
        _fieldsSeen = 0;
        Problem = CsvRecordProblem.None;
        RecordLine = _line;
    }

    /// <summary>Ends a record; false for a blank line, which is skipped.</summary>
    private bool EndRecord()
    {
        _inRecord = false;
        var blank = _fieldsSeen == 1 && _dataLength == 0 && !_anyQuote && Problem == CsvRecordProblem.None;
        if (Problem == CsvRecordProblem.TooLong)
        {
            _fieldCount = 0;
        }
        return !blank;
    }

    private void Append(ReadOnlySpan<byte> bytes)
    {
        _recordBytes += bytes.Length;
        if (Problem is CsvRecordProblem.TooLong)
        {
            return;
        }
        if (_recordBytes > _data.Length)
        {
            Problem = CsvRecordProblem.TooLong;
            return;
        }
        if (_fieldsSeen >= _fieldEnds.Length)
        {
            // Bytes of fields beyond the maximum are counted but not kept.
            return;
        }
        bytes.CopyTo(_data.AsSpan(_dataLength));
        _dataLength += bytes.Length;
    }

    private void EndField()
    {
        _fieldsSeen++;
        // The separator counts towards the record's length, so a line of a million commas is too long.
        _recordBytes++;
        if (_recordBytes > _data.Length)
        {
            Problem = CsvRecordProblem.TooLong;
        }
        if (_fieldsSeen > _fieldEnds.Length)
        {
            Flag(CsvRecordProblem.TooManyFields);
            return;
        }
        _fieldEnds[_fieldCount++] = _dataLength;
    }

    /// <summary>Keeps the most serious problem of a record.</summary>
    private void Flag(CsvRecordProblem problem)
    {
        if (problem > Problem)
        {
            Problem = problem;
        }
    }

    private void LineBreak(byte b)
    {
        // CRLF is one line break, and so are a lone LF and a lone CR.
        if (b == (byte)'\r' || !_prevCr)
        {
            _line++;
        }
        _prevCr = b == (byte)'\r';
        _atLineStart = true;
    }

    /// <summary>Counts the line breaks inside a run of a quoted field, which do not end the record.</summary>
    private void CountLineBreaks(ReadOnlySpan<byte> run)
    {
        if (run.IndexOfAny(LineBreaks) < 0)
        {
            _prevCr = false;
            _atLineStart = false;
            return;
        }
        foreach (var b in run)
        {
            if (b is (byte)'\r' or (byte)'\n')
            {
                LineBreak(b);
            }
            else
            {
                _prevCr = false;
                _atLineStart = false;
            }
        }
    }
}
