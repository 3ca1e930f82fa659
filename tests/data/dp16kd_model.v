// Behavioural model of the ECP5 DP16KD, as much of it as accelgen's ECP5RAM uses:
// DATA_WIDTH 1/2/4/9/18 per port, the word address above log2(width) bits of the
// 14 address pins (x9 and x18 count as 8 and 16), ADx1..0 as the byte enables of
// x18 writes, REGMODE NOREG/OUTREG, CE/OCE/WE. Written for accelgen's tests from the
// Lattice ECP5 memory usage guide (TN1264) and Yosys' DP16KD mapping; chip selects,
// resets and write-through modes are not modelled.
module DP16KD(
  input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0,
  input ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0,
  input CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0,
  output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0,
  input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0,
  input ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0,
  input CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0,
  output DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0
);
  parameter DATA_WIDTH_A = 18;
  parameter DATA_WIDTH_B = 18;
  parameter REGMODE_A = "NOREG";
  parameter REGMODE_B = "NOREG";
  parameter RESETMODE = "SYNC";
  parameter ASYNC_RESET_RELEASE = "SYNC";
  parameter CSDECODE_A = "0b000";
  parameter CSDECODE_B = "0b000";
  parameter WRITEMODE_A = "NORMAL";
  parameter WRITEMODE_B = "NORMAL";
  parameter GSR = "ENABLED";

  reg [17:0] mem [0:1023];   // 1024 x 18 bits; narrower modes address sub-words
  wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0};
  wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0};
  wire [17:0] dia = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
  wire [17:0] dib = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
  reg [17:0] lat_a = 0, lat_b = 0, out_a = 0, out_b = 0;

  integer i;
  initial for (i = 0; i < 1024; i = i + 1) mem[i] = 0;

  function integer shift_of(input integer w);
    shift_of = (w == 18) ? 4 : (w == 9) ? 3 : (w == 4) ? 2 : (w == 2) ? 1 : 0;
  endfunction

  // one w-bit word at word address `wa` of a mode: row wa / (18 / w) of the 1024 x 18
  // array, slot wa % (18 / w) (x9: two 9-bit halves; x4: four nibbles of the low 16 bits...)
  task write_word(input integer w, input [13:0] ad, input [17:0] d, input [1:0] be);
    integer wa, per, row, slot, k;
    begin
      wa = ad >> shift_of(w);
      per = (w == 18) ? 1 : (w == 9) ? 2 : 16 / w;
      row = wa / per; slot = wa % per;
      if (w == 18) begin
        if (be[0]) mem[row][8:0] = d[8:0];
        if (be[1]) mem[row][17:9] = d[17:9];
      end else if (w == 9) begin
        for (k = 0; k < 9; k = k + 1) mem[row][slot * 9 + k] = d[k];
      end else begin
        for (k = 0; k < w; k = k + 1) mem[row][slot * w + k] = d[k];
      end
    end
  endtask

  function [17:0] read_word(input integer w, input [13:0] ad);
    integer wa, per, row, slot, k;
    begin
      wa = ad >> shift_of(w);
      per = (w == 18) ? 1 : (w == 9) ? 2 : 16 / w;
      row = wa / per; slot = wa % per;
      read_word = 0;
      if (w == 18) read_word = mem[row];
      else if (w == 9) for (k = 0; k < 9; k = k + 1) read_word[k] = mem[row][slot * 9 + k];
      else for (k = 0; k < w; k = k + 1) read_word[k] = mem[row][slot * w + k];
    end
  endfunction

  always @(posedge CLKA) if (CEA) begin
    if (WEA) write_word(DATA_WIDTH_A, ada, dia, (DATA_WIDTH_A == 18) ? ada[1:0] : 2'b11);
    else lat_a <= read_word(DATA_WIDTH_A, ada);
  end
  always @(posedge CLKB) if (CEB) begin
    if (WEB) write_word(DATA_WIDTH_B, adb, dib, (DATA_WIDTH_B == 18) ? adb[1:0] : 2'b11);
    else lat_b <= read_word(DATA_WIDTH_B, adb);
  end
  always @(posedge CLKA) if (OCEA) out_a <= lat_a;
  always @(posedge CLKB) if (OCEB) out_b <= lat_b;

  wire [17:0] doa = (REGMODE_A == "OUTREG") ? out_a : lat_a;
  wire [17:0] dob = (REGMODE_B == "OUTREG") ? out_b : lat_b;
  assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = doa;
  assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = dob;
endmodule
